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
    # espeak-ng adds a little random jitter to its waveform: same words, same length within 1%
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
