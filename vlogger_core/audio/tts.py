"""Offline text-to-speech with exact phoneme timings: espeak-ng's C library through ctypes.

VLOGGER turns text into speech with a TTS model before stage 1. Neural TTS packages download
voices at run time, so the offline default is espeak-ng (Debian package libespeak-ng1). Its
library reports, for every phoneme, where it starts in the audio it produced: the phoneme
timeline the synthetic motion corpus and the lip-sync metric need.

Deterministic: the same text, voice and settings give the same samples and timeline in any
process, whatever was spoken before (every utterance gets a freshly loaded espeak-ng: `_Espeak`).
"""
from __future__ import annotations

import _ctypes
import atexit
import contextlib
import ctypes
import ctypes.util
import glob
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass, field

import numpy as np

from ..errors import VloggerError

SAMPLE_RATE = 22050  # espeak-ng's output rate

# speak_lib.h
AUDIO_OUTPUT_SYNCHRONOUS = 2
INITIALIZE_PHONEME_EVENTS = 0x0001
INITIALIZE_DONT_EXIT = 0x8000
EVENT_LIST_TERMINATED, EVENT_WORD, EVENT_SENTENCE, EVENT_END, EVENT_PHONEME = 0, 1, 2, 5, 7
POS_CHARACTER, CHARS_UTF8, ENDPAUSE = 1, 1, 0x1000
PARAM_RATE, PARAM_VOLUME, PARAM_PITCH, PARAM_RANGE, PARAM_WORDGAP = 1, 2, 3, 4, 7

PAUSE = "_"


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint),
                ("text_position", ctypes.c_int), ("length", ctypes.c_int),
                ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _EventId)]


class _Voice(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("languages", ctypes.c_char_p),
                ("identifier", ctypes.c_char_p), ("gender", ctypes.c_ubyte),
                ("age", ctypes.c_ubyte), ("variant", ctypes.c_ubyte), ("xx1", ctypes.c_ubyte),
                ("score", ctypes.c_int), ("spare", ctypes.c_void_p)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.POINTER(_Event))


@dataclass
class PhonemeTimeline:
    """What was spoken when: espeak phoneme mnemonics with start/end times in seconds."""

    phonemes: list[str]
    starts: np.ndarray
    ends: np.ndarray
    words: list[tuple[str, float, float]] = field(default_factory=list)
    sample_rate: int = SAMPLE_RATE

    @property
    def duration(self) -> float:
        return float(self.ends[-1]) if len(self.ends) else 0.0

    def at_frames(self, fps: float, num_frames: int) -> list[str]:
        """The phoneme active at each video frame's centre ('_' = pause / silence)."""
        t = (np.arange(num_frames) + 0.5) / fps
        idx = np.searchsorted(self.starts, t, side="right") - 1
        out = []
        for i, ti in zip(idx, t):
            out.append(self.phonemes[i] if 0 <= i < len(self.phonemes) and ti < self.ends[i] else PAUSE)
        return out

    def to_dict(self) -> dict:
        return {"phonemes": self.phonemes, "starts": self.starts.tolist(), "ends": self.ends.tolist(),
                "words": [list(w) for w in self.words], "sample_rate": self.sample_rate}

    @classmethod
    def from_dict(cls, d: dict) -> "PhonemeTimeline":
        return cls(list(d["phonemes"]), np.asarray(d["starts"], float), np.asarray(d["ends"], float),
                   [(str(w), float(a), float(b)) for w, a, b in d.get("words", [])],
                   int(d.get("sample_rate", SAMPLE_RATE)))


def is_pause(phoneme: str) -> bool:
    """espeak marks pauses with '_' ('_', '_:', '_!' ...)."""
    return phoneme.startswith(PAUSE)


class TTSError(VloggerError):
    """Bad TTS input (empty text, unknown voice, out-of-range parameter; arg names it), or
    espeak-ng missing or failing (arg None)."""


INSTALL = "install espeak-ng (apt-get install espeak-ng libespeak-ng1), then restart"


class _DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]


# the C library: srand (espeak's breath and klatt noise draw from libc rand()) and dladdr
_LIBC = ctypes.CDLL(None) if os.name == "posix" else None
if _LIBC is not None:
    _LIBC.dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(_DlInfo)]


def _library_file() -> str:
    """The path of the libespeak-ng file the loader would use (find_library gives a bare soname
    on Linux: load it once and ask the loader where it came from)."""
    name = ctypes.util.find_library("espeak-ng") or next(iter(glob.glob("/usr/lib/*/libespeak-ng.so.1")), None)
    if not name:
        raise TTSError("libespeak-ng is not installed", fix=INSTALL)
    if os.path.isabs(name) or _LIBC is None:
        return os.path.realpath(name) if os.path.isabs(name) else name
    lib = ctypes.CDLL(name)
    try:
        info = _DlInfo()
        addr = ctypes.cast(lib.espeak_Initialize, ctypes.c_void_p)
        if not _LIBC.dladdr(addr, ctypes.byref(info)) or not info.dli_fname:
            raise TTSError(f"cannot tell where {name} was loaded from", fix=INSTALL)
        return os.path.realpath(info.dli_fname.decode())
    finally:
        _unload(lib)


def _unload(lib: ctypes.CDLL) -> None:
    (getattr(_ctypes, "dlclose", None) or _ctypes.FreeLibrary)(lib._handle)


def _private_copy(path: str, in_memory: bool = True) -> str:
    """A path to a copy of the library file that nothing else in the process loads: the loader
    maps every dlopen of it (after the last dlclose) as a new instance with fresh globals. In
    memory (memfd, Linux: nothing left on disk, works where /tmp is noexec), else a temp file."""
    with open(path, "rb") as f:
        data = f.read()
    if in_memory and hasattr(os, "memfd_create"):
        fd = os.memfd_create("vlogger-libespeak-ng")  # kept open for the life of the process
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        return f"/proc/self/fd/{fd}"
    folder = tempfile.mkdtemp(prefix="vlogger-espeak-")
    atexit.register(shutil.rmtree, folder, True)
    copy = os.path.join(folder, os.path.basename(path))
    with open(copy, "wb") as f:
        f.write(data)
    return copy


class _Instance:
    """One freshly loaded, initialized espeak-ng (its own globals); `close` terminates and
    unloads it. Only one lives at a time (the same file loaded twice would be one instance)."""

    def __init__(self, path: str):
        try:
            self.lib = ctypes.CDLL(path)
        except OSError as e:
            raise TTSError(f"cannot load libespeak-ng: {e}", fix=INSTALL) from None
        self.lib.espeak_Initialize.restype = ctypes.c_int
        self.lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
        self.lib.espeak_ListVoices.argtypes = [ctypes.POINTER(_Voice)]
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                          ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        rate = self.lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, None,
                                          INITIALIZE_PHONEME_EVENTS | INITIALIZE_DONT_EXIT)
        if rate <= 0:
            _unload(self.lib)
            raise TTSError("espeak_Initialize failed (espeak-ng-data missing?)", fix=INSTALL)
        self.sample_rate = rate
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int, str, int, int]] = []
        self._cb = _CALLBACK(self._on_synth)  # keep a reference: C holds the pointer
        self.lib.espeak_SetSynthCallback(self._cb)

    def close(self) -> None:
        self.lib.espeak_Terminate()
        _unload(self.lib)
        self.lib = None

    def _on_synth(self, wav, numsamples, events) -> int:
        if numsamples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(numsamples,)).copy())
        i = 0
        while events[i].type != EVENT_LIST_TERMINATED:
            e = events[i]
            name = e.id.string.decode("utf-8", "replace") if e.type == EVENT_PHONEME else ""
            self._events.append((e.type, e.audio_position, name, e.text_position, e.length))
            i += 1
        return 0

    def select(self, voice: str) -> bool:
        return self.lib.espeak_SetVoiceByName(voice.encode()) == 0

    def voices(self) -> list[tuple[str, str, str]]:
        """(identifier, languages, name) of every voice and variant espeak knows."""
        out = []
        for spec in (None, "variant"):
            if spec is None:
                arr = self.lib.espeak_ListVoices(None)
            else:
                v = _Voice()
                v.languages = spec.encode()
                arr = self.lib.espeak_ListVoices(ctypes.byref(v))
            i = 0
            while arr[i]:
                v = arr[i].contents
                out.append((v.identifier.decode(), (v.languages or b"")[1:].decode(errors="ignore"),
                            (v.name or b"").decode()))
                i += 1
        return out

    def synth(self, text: str, voice: str, rate: int, pitch: int, pitch_range: int, gap: int):
        if not self.select(voice):
            raise TTSError(f"unknown voice {voice!r}", "voice", "pick a voice from the list (e.g. en-us)")
        for p, v in ((PARAM_RATE, rate), (PARAM_PITCH, pitch), (PARAM_RANGE, pitch_range),
                     (PARAM_VOLUME, 100), (PARAM_WORDGAP, gap)):
            self.lib.espeak_SetParameter(p, int(v), 0)
        self._chunks, self._events = [], []
        if _LIBC is not None:  # rand()'s state is the process's: start it where a fresh process does
            _LIBC.srand(1)
        data = text.encode("utf-8")
        err = self.lib.espeak_Synth(data, len(data) + 1, 0, POS_CHARACTER, 0, CHARS_UTF8, None, None)
        if err != 0:
            raise TTSError(f"espeak_Synth failed with code {err}", "text",
                           "try a shorter or plainer text, or reinstall espeak-ng")
        self.lib.espeak_Synchronize()
        chunks, events = self._chunks, self._events
        self._chunks, self._events = [], []
        wave = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
        return wave, events


class _Espeak:
    """espeak-ng, loaded afresh for every utterance, so that what it says does not depend on
    what was said before in the process.

    espeak-ng keeps state in its globals from one utterance to the next, and no API call resets
    it: wavegen's pitch-flutter index (a static inside AdvanceParameters, advanced every 64
    samples and never reset), a voice variant's attributes, libc rand() (breath and klatt noise);
    espeak_Terminate + espeak_Initialize in one instance hangs. So every `session()` loads a
    private copy of the library file (a new instance: fresh globals, 3-10 ms), seeds rand, and
    terminates and unloads it after; the lock keeps one instance at a time."""

    def __init__(self):
        try:
            self.path = _private_copy(_library_file())
        except OSError as e:
            raise TTSError(f"cannot load libespeak-ng: {e}", fix=INSTALL) from None
        self.lock = threading.Lock()
        with self.session() as s:  # fails here, once, if espeak-ng-data is missing
            self.sample_rate = s.sample_rate

    @contextlib.contextmanager
    def session(self):
        with self.lock:
            inst = _Instance(self.path)
            try:
                yield inst
            finally:
                inst.close()

    def synth(self, text: str, voice: str, rate: int, pitch: int, pitch_range: int, gap: int):
        with self.session() as s:
            return s.synth(text, voice, rate, pitch, pitch_range, gap)


_ENGINE: _Espeak | None = None
_ENGINE_LOCK = threading.Lock()


def _engine() -> _Espeak:
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is None:
            _ENGINE = _Espeak()
        return _ENGINE


_VOICES: list[str] | None = None


def list_voices(prefix: str = "") -> list[str]:
    """Voice names espeak accepts: languages ('en-us') and language+variant ('en-us+f3'),
    each checked by asking espeak to select it (some listed variants are refused)."""
    global _VOICES
    if _VOICES is None:
        with _engine().session() as s:
            _VOICES = [v for v in _candidate_voices(s) if s.select(v)]
    return [n for n in _VOICES if n.startswith(prefix)]


def _candidate_voices(eng: _Instance) -> list[str]:
    langs, variants = [], []
    for ident, lang, name in eng.voices():
        if ident.startswith("!v/") or "variant" in ident:
            variants.append(ident.split("/")[-1])
        else:
            langs.append(lang or ident.split("/")[-1])
    names = sorted(set(langs))
    en = [n for n in names if n.startswith("en")]
    names += [f"{l}+{v}" for l in ("en-us", "en-gb") if l in en for v in sorted(set(variants))]
    return names


def synthesize(text: str, voice: str = "en-us", rate: int = 160, pitch: int = 50,
               pitch_range: int = 50, gap_ms: int = 0) -> tuple[np.ndarray, int, PhonemeTimeline]:
    """Speak `text`. Returns (mono float32 waveform in [-1, 1], 22050, PhonemeTimeline)."""
    if not isinstance(text, str) or not text.strip():
        raise TTSError("the text is empty", "text", "type the sentence to speak")
    for name, v, lo, hi in (("rate", rate, 80, 450), ("pitch", pitch, 0, 99),
                            ("pitch_range", pitch_range, 0, 99), ("gap_ms", gap_ms, 0, 1000)):
        if not lo <= v <= hi:
            raise TTSError(f"{name}={v} is outside {lo}..{hi}", name, f"use a {name} from {lo} to {hi}")
    eng = _engine()
    wave16, events = eng.synth(text.strip(), voice, rate, pitch, pitch_range, gap_ms // 10)
    sr = eng.sample_rate
    wave = wave16.astype(np.float32) / 32768.0
    duration = len(wave) / sr
    phon = [(pos / 1000.0, name) for typ, pos, name, _, _ in events if typ == EVENT_PHONEME]
    phonemes, starts = [], []
    for t, name in phon:
        name = name.strip() or PAUSE
        if phonemes and abs(t - starts[-1]) < 1e-9:  # same instant: the later event wins
            phonemes[-1] = name
            continue
        phonemes.append(name)
        starts.append(min(t, duration))
    if not starts or starts[0] > 0:  # the lead-in before the first phoneme is silence
        phonemes.insert(0, PAUSE)
        starts.insert(0, 0.0)
    starts_a = np.asarray(starts, float)
    ends_a = np.append(starts_a[1:], duration) if len(starts_a) else np.zeros(0)
    words = []
    wev = [(pos / 1000.0, tp, ln) for typ, pos, _, tp, ln in events if typ == EVENT_WORD]
    for i, (t, tp, ln) in enumerate(wev):
        end = wev[i + 1][0] if i + 1 < len(wev) else duration
        words.append((text.strip().encode()[max(0, tp - 1):tp - 1 + ln].decode(errors="ignore"), t, end))
    return wave, sr, PhonemeTimeline(phonemes, starts_a, ends_a, words, sr)
