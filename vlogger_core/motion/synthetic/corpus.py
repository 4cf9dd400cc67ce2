"""The synthetic talking-motion corpus the default motion model is trained on.

Clips = 1-3 generated English sentences spoken by espeak-ng (vlogger_core.audio.tts) with a random
voice/rate/pitch, joined by pauses (sometimes long ones, so silence behaviour is learned), and a
motion drawn from vlogger_core.motion.synthetic.priors for that speech.

Held-out split, fixed by construction so metrics never see training material: sentences whose
CRC32 falls in 1/8 of the hash space, and the voices in HELDOUT_VOICES, are used ONLY by
split="heldout".

On disk (plain files, so users can drop in motion fitted from real footage instead):
    root/corpus.json                      {"fps", "split", "clips": [...], ...}
    root/clip_00000/audio.wav             16 kHz mono PCM16
    root/clip_00000/motion.npz            Motion.save_npz
    root/clip_00000/phonemes.json         PhonemeTimeline.to_dict (optional for training)
"""
from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from ...audio.speech_io import MODEL_SAMPLE_RATE
from ...audio.tts import PAUSE, PhonemeTimeline, list_voices, synthesize
from ...callbacks import Progress, report
from ...media import resample
from ..params import Motion
from .priors import synth_motion
from .words import word_sentence

SUBJECTS = ["I", "we", "you", "they", "my sister", "our team", "the doctor", "a friend of mine",
            "the old man", "everyone here", "my neighbour", "the teacher", "nobody", "the kids",
            "this company", "the pilot", "your brother", "the chef", "a stranger", "the mayor"]
VERBS = ["really like", "never understood", "want to visit", "just found", "could fix",
         "talked about", "will bring", "forgot", "keep thinking about", "painted", "bought",
         "should explain", "used to hate", "remember", "recommended", "are building",
         "carefully moved", "quickly sold", "have seen", "tried to open"]
OBJECTS = ["the blue bicycle", "a quiet village", "this strange machine", "the morning news",
           "fresh bread", "a big red balloon", "the broken window", "our weekly meeting",
           "cold pizza", "the museum downtown", "an old photograph", "the zoo", "smooth jazz",
           "a new phone", "the mountain path", "purple flowers", "the final exam", "warm soup",
           "the football match", "a tiny puppy", "heavy boxes", "the airport", "my favourite book"]
TAILS = ["", "", " yesterday", " last summer", " every morning", " before lunch",
         " with great care", " for no reason", " in the rain", " right now", " again and again",
         " after the party", " without telling anyone"]
OPENERS = ["", "", "", "Honestly, ", "Well, ", "You know, ", "Believe it or not, ", "So, ",
           "Actually, ", "Oh wow, ", "To be fair, ", "Look, "]
QUESTIONS = ["Do you think {s} {v} {o}?", "Why would {s} say that about {o}?",
             "Have you ever seen {o}{t}?", "Where did {s} put {o}?"]
EXCLAIMS = ["That is amazing!", "No way!", "Wait a second.", "Thank you so much.", "Right.",
            "Exactly!", "Hmm, let me think.", "Okay, here we go."]

_EXCLUDE = ("whisper", "croak", "Demonic", "Robot", "robosoft", "UniRobot", "Tweaky")
HELDOUT_VOICES = ["en-us+f4", "en-gb+m3", "en-us+Mike", "en-gb+belinda", "en-us+klatt4",
                  "en-gb-scotland", "en-us+steph3", "en-gb+max"]


def is_heldout_sentence(s: str) -> bool:
    return zlib.crc32(s.strip().lower().encode()) % 8 == 0


def make_sentence(rng: np.random.Generator) -> str:
    r = rng.random()
    pick = lambda xs: xs[int(rng.integers(len(xs)))]
    if r < 0.12:
        return pick(EXCLAIMS)
    if r < 0.3:
        return pick(QUESTIONS).format(s=pick(SUBJECTS), v=pick(VERBS), o=pick(OBJECTS), t=pick(TAILS))
    s = f"{pick(OPENERS)}{pick(SUBJECTS)} {pick(VERBS)} {pick(OBJECTS)}{pick(TAILS)}"
    if rng.random() < 0.25:
        s += f", and {pick(SUBJECTS)} {pick(VERBS)} {pick(OBJECTS)}"
    s = s[0].upper() + s[1:]
    return s + ("!" if rng.random() < 0.15 else ".")


VOCABULARIES = ("phrases", "words")


def sentence_for(split: str, rng: np.random.Generator, vocabulary: str = "phrases") -> str:
    """A sentence of the split: "phrases" (the templates above: what the shipped motion model
    learnt on) or "words" (words.word_sentence: a broad vocabulary, for the lip-closure head)."""
    want = split == "heldout"
    make = word_sentence if vocabulary == "words" else make_sentence
    while True:
        s = make(rng)
        if is_heldout_sentence(s) == want:
            return s


def voices_for(split: str) -> list[str]:
    if split == "heldout":
        return [v for v in HELDOUT_VOICES if _speaks(v)]
    allv = list_voices("en")
    return [v for v in allv if v not in HELDOUT_VOICES and not any(x in v for x in _EXCLUDE)
            and _speaks(v)]


def _speaks(voice: str) -> bool:
    """list_voices offers every language+variant pair; keep those espeak really accepts."""
    try:
        synthesize("ok", voice=voice)
        return True
    except Exception:
        return False


def _concat(parts: list[tuple[np.ndarray, PhonemeTimeline | None]], sr: int) -> tuple[np.ndarray, PhonemeTimeline]:
    """Join waves (None timeline = silence) into one wave and one timeline."""
    waves, ph, st, en, words = [], [], [], [], []
    t0 = 0.0
    for wave, tl in parts:
        d = len(wave) / sr
        if tl is None:
            ph.append(PAUSE); st.append(t0); en.append(t0 + d)
        else:
            ph += tl.phonemes; st += list(tl.starts + t0); en += list(tl.ends + t0)
            words += [(w, a + t0, b + t0) for w, a, b in tl.words]
        waves.append(wave)
        t0 += d
    return np.concatenate(waves), PhonemeTimeline(ph, np.array(st), np.array(en), words, sr)


def make_clip(rng: np.random.Generator, split: str, voices: list[str], fps: float, vocabulary: str = "phrases"
              ) -> tuple[torch.Tensor, PhonemeTimeline, Motion, dict]:
    """One clip: (16 kHz mono wave, timeline in seconds, motion, metadata)."""
    voice = voices[int(rng.integers(len(voices)))]
    rate, pitch, rng_pitch = int(rng.integers(120, 230)), int(rng.integers(20, 80)), int(rng.integers(20, 90))
    sr = 22050
    sil = lambda s: (np.zeros(int(s * sr), np.float32), None)
    parts = [sil(rng.uniform(0.05, 0.8))]
    sentences = [sentence_for(split, rng, vocabulary) for _ in range(int(rng.integers(1, 4)))]
    for k, s in enumerate(sentences):
        wave, sr_, tl = synthesize(s, voice=voice, rate=rate, pitch=pitch, pitch_range=rng_pitch)
        assert sr_ == sr
        parts.append((wave, tl))
        if k < len(sentences) - 1:
            parts.append(sil(rng.uniform(2.0, 4.0) if rng.random() < 0.12 else rng.uniform(0.15, 1.2)))
    parts.append(sil(rng.uniform(0.2, 1.2)))
    wave, tl = _concat(parts, sr)
    wave = wave * rng.uniform(0.3, 1.0) / max(1e-6, np.abs(wave).max())
    w16 = resample(torch.from_numpy(wave.astype(np.float32)), sr, MODEL_SAMPLE_RATE)
    motion = synth_motion(tl, w16, fps, rng)
    meta = {"voice": voice, "rate": rate, "pitch": pitch, "pitch_range": rng_pitch,
            "sentences": sentences, "seconds": round(len(w16) / MODEL_SAMPLE_RATE, 3)}
    return w16, tl, motion, meta


def write_clip(folder: Path, wave16k: torch.Tensor, timeline: PhonemeTimeline, motion: Motion) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    sf.write(str(folder / "audio.wav"), wave16k.numpy(), MODEL_SAMPLE_RATE, subtype="PCM_16")
    motion.save_npz(str(folder / "motion.npz"))
    (folder / "phonemes.json").write_text(json.dumps(timeline.to_dict()))


def make_corpus(root: str | Path, num_clips: int, split: str = "train", fps: float = 25.0,
                seed: int = 0, progress: Progress = None, vocabulary: str = "phrases") -> dict:
    """Write num_clips clips under root and root/corpus.json; returns the corpus index."""
    if split not in ("train", "heldout"):
        raise ValueError("split must be 'train' or 'heldout'")
    if vocabulary not in VOCABULARIES:
        raise ValueError(f"vocabulary must be one of {VOCABULARIES}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed + (1_000_003 if split == "heldout" else 0))
    voices = voices_for(split)
    clips = []
    for i in range(num_clips):
        w16, tl, motion, meta = make_clip(rng, split, voices, fps, vocabulary)
        name = f"clip_{i:05d}"
        write_clip(root / name, w16, tl, motion)
        clips.append({"name": name, **meta})
        report(progress, i + 1, num_clips)
    index = {"format": "vlogger-motion-corpus-v1", "fps": fps, "split": split, "seed": seed,
             "vocabulary": vocabulary,
             "generator": "vlogger_core.motion.synthetic.corpus", "heldout_voices": HELDOUT_VOICES,
             "seconds": round(sum(c["seconds"] for c in clips), 1), "clips": clips}
    (root / "corpus.json").write_text(json.dumps(index, indent=1))
    return index


def load_clip(folder: str | Path) -> tuple[torch.Tensor, Motion, PhonemeTimeline | None]:
    """(16 kHz mono wave, motion, timeline or None) of one clip folder."""
    folder = Path(folder)
    wave, sr = sf.read(str(folder / "audio.wav"), dtype="float32", always_2d=True)
    w = resample(torch.from_numpy(wave.mean(1)), sr, MODEL_SAMPLE_RATE)
    motion = Motion.load_npz(str(folder / "motion.npz"))
    ph = folder / "phonemes.json"
    tl = PhonemeTimeline.from_dict(json.loads(ph.read_text())) if ph.exists() else None
    return w, motion, tl


def clip_folders(root: str | Path) -> list[Path]:
    """Every folder under root holding audio.wav + motion.npz (corpus.json not required)."""
    return sorted(p.parent for p in Path(root).rglob("motion.npz") if (p.parent / "audio.wav").exists())
