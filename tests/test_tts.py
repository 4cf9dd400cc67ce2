"""Offline TTS: real espeak-ng audio with phoneme timings that match the sound."""
import numpy as np
import pytest

from vlogger_core.audio import tts


def _rms(wave, sr, a, b):
    seg = wave[int(a * sr):int(b * sr)]
    return float(np.sqrt(np.mean(seg ** 2))) if len(seg) else 0.0


def test_phonemes_cover_the_audio_and_pauses_are_silent():
    wave, sr, tl = tts.synthesize("Good morning. Thank you for coming, everyone.")
    assert sr == 22050 and wave.dtype == np.float32 and np.abs(wave).max() <= 1.0
    assert tl.starts[0] == 0.0 and abs(tl.ends[-1] - len(wave) / sr) < 1e-6
    assert np.allclose(tl.starts[1:], tl.ends[:-1])      # no gaps, no overlaps
    assert np.all(tl.ends > tl.starts)
    pauses = [(a, b) for p, a, b in zip(tl.phonemes, tl.starts, tl.ends) if tts.is_pause(p) and b - a > 0.06]
    vowels = [(a, b) for p, a, b in zip(tl.phonemes, tl.starts, tl.ends) if p[0] in "aeiouAEIOU@" and b - a > 0.04]
    assert pauses and vowels
    # the middle of a pause is much quieter than the middle of a vowel
    pause_rms = np.median([_rms(wave, sr, a + 0.02, b - 0.02) for a, b in pauses])
    vowel_rms = np.median([_rms(wave, sr, a + 0.01, b - 0.01) for a, b in vowels])
    assert pause_rms < 0.1 * vowel_rms


def test_repeatable_and_voice_changes_sound():
    # same words, same length within 1% (in fact sample-identical: test_same_speech_whatever_was_spoken_before)
    a, _, ta = tts.synthesize("Hello world", voice="en-us")
    b, _, tb = tts.synthesize("Hello world", voice="en-us")
    assert ta.phonemes == tb.phonemes and abs(len(a) - len(b)) < 0.01 * len(a)
    c = tts.synthesize("Hello world", voice="en-us", pitch=90)[0]
    d = tts.synthesize("Hello world", voice="en-us+f3")[0]

    def pitch_hz(w, sr=22050):  # autocorrelation peak of the loudest 50 ms
        i = int(np.argmax(np.convolve(w ** 2, np.ones(1102), "same")))
        seg = w[max(0, i - 551):i + 551]
        ac = np.correlate(seg, seg, "full")[len(seg) - 1:]
        lo, hi = sr // 400, sr // 60
        return sr / (lo + int(np.argmax(ac[lo:hi])))
    assert pitch_hz(c) > pitch_hz(a) * 1.15
    assert pitch_hz(d) > pitch_hz(a) * 1.15


def test_timeline_at_frames_and_roundtrip():
    _, _, tl = tts.synthesize("Mama made pie.")
    frames = tl.at_frames(24, int(tl.duration * 24))
    assert "m" in frames and len(frames) == int(tl.duration * 24)
    again = tts.PhonemeTimeline.from_dict(tl.to_dict())
    assert again.phonemes == tl.phonemes and np.allclose(again.starts, tl.starts)


def test_bad_input_is_named():
    with pytest.raises(tts.TTSError, match="empty"):
        tts.synthesize("   ")
    with pytest.raises(tts.TTSError, match="unknown voice"):
        tts.synthesize("hi", voice="xx-nope")
    with pytest.raises(tts.TTSError, match="rate"):
        tts.synthesize("hi", rate=5)
    assert "en-us" in tts.list_voices("en")


# what a fresh process says: the reference for "whatever was spoken before"
FRESH = """
import json, sys
import numpy as np
from vlogger_core.audio.tts import synthesize
out = {}
for voice in sys.argv[2].split(","):
    w, sr, tl = synthesize(sys.argv[1], voice=voice)
    out[voice] = {"wave": w.tolist(), "sr": sr, "timeline": tl.to_dict()}
print(json.dumps(out))
"""
TEXT = "Mama made a pie. Bob ate it all, papa!"
VOICES = ("en-us", "en-us+f4", "en-us+whisper")   # whisper draws breath noise from rand()


def _fresh_process(text, voices):
    import json
    import subprocess
    import sys
    from pathlib import Path
    r = subprocess.run([sys.executable, "-c", FRESH, text, ",".join(voices)], capture_output=True, text=True,
                       check=False, timeout=120, cwd=str(Path(__file__).resolve().parent.parent))
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_same_speech_whatever_was_spoken_before():
    """espeak-ng keeps state between utterances (pitch flutter, a variant's attributes, rand()):
    the same text, voice and settings must still give the samples and timeline a fresh process
    gives, after other voices, variants, languages and a refused voice, in any order."""
    ref = _fresh_process(TEXT, VOICES)
    got = {v: [] for v in VOICES}
    for order in (VOICES, VOICES[::-1], ("en-us", "en-us")):
        for v in order:
            for other in ("en-us+klatt2", "de", "en-gb-x-rp"):
                tts.synthesize("Something else entirely, said first.", voice=other, rate=200, pitch=80)
            with pytest.raises(tts.TTSError):
                tts.synthesize(TEXT, voice="xx-nope")
            got[v].append(tts.synthesize(TEXT, voice=v))
    for v in VOICES:
        want = np.asarray(ref[v]["wave"], np.float32)
        assert len(got[v]) >= 2
        for wave, sr, tl in got[v]:
            assert sr == ref[v]["sr"] and len(wave) == len(want), (v, len(wave), len(want))
            assert np.array_equal(wave, want), v
            assert tl.to_dict() == ref[v]["timeline"], v
    # and the voices really differ (the comparison is not trivially true)
    assert ref["en-us"]["wave"] != ref["en-us+f4"]["wave"] != ref["en-us+whisper"]["wave"] != ref["en-us"]["wave"]


def test_same_speech_from_threads():
    """The engine serves the server's worker threads: concurrent calls give the serial result."""
    from concurrent.futures import ThreadPoolExecutor
    want = {v: tts.synthesize(TEXT, voice=v)[0] for v in VOICES}
    jobs = [VOICES[i % len(VOICES)] for i in range(9)]
    with ThreadPoolExecutor(4) as pool:
        waves = list(pool.map(lambda v: tts.synthesize(TEXT, voice=v)[0], jobs))
    for v, w in zip(jobs, waves):
        assert np.array_equal(w, want[v]), v


def test_errors_name_the_argument_and_the_fix():
    with pytest.raises(tts.TTSError) as e:
        tts.synthesize("hi", voice="xx-nope")
    assert e.value.arg == "voice" and "voice" in e.value.fix and "unknown voice" in e.value.message
    with pytest.raises(tts.TTSError) as e:
        tts.synthesize("hi", pitch=120)
    assert e.value.arg == "pitch" and "0 to 99" in e.value.fix
    # a refused voice leaves the engine working
    assert len(tts.synthesize("hi")[0]) > 1000


def test_file_copy_where_memfd_is_missing():
    """Without memfd (not Linux) the private copy of the library is a temp file: same speech."""
    import os
    path = tts._private_copy(tts._library_file(), in_memory=False)
    assert os.path.isfile(path) and not path.startswith("/proc/")
    want = tts._engine().synth(TEXT, "en-us+whisper", 160, 50, 50, 0)
    inst = tts._Instance(path)
    try:
        got = inst.synth(TEXT, "en-us+whisper", 160, 50, 50, 0)
    finally:
        inst.close()
    assert np.array_equal(got[0], want[0]) and got[1] == want[1]
