"""Lips that close, seen on the OUTPUT video by an independent detector (issue 14).

Through the real server: text -> speech -> motion -> frames (README command 1's renderer, 512) ->
MP4. The pack's default landmark detector (mediapipe's face mesh on LiteRT; it knows nothing of
how the frames were made) reads the inner-lip gap of every decoded frame. The photo shows its
teeth; still the lips must close in the pause (and on p / b / m), and open on the vowels."""
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from vlogger_core.audio.tts import synthesize
from vlogger_core.media import read_video

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import _lip_metrics as lips  # noqa: E402

TEXT = "Mama made a pie. Bob ate it all, papa."   # full stop = a pause of about half a second
ROUND_TEXT = "Who knew? Two blue shoes go slowly. We see three green trees."
VOICE, RATE = "en-us", 140
OPEN_VOWELS = {"a", "A", "A:", "aI", "aa", "a#", "V", "aU", "O", "O:", "eI", "E"}


def _talking_clip(comfy, text: str, name: str):
    # the speech and its timeline come from one TTS call (espeak-ng output does not depend on what
    # was spoken before in this process: tests/test_tts.py) and the server only loads the file:
    # the frames and the timeline belong to the same audio
    import soundfile as sf
    wave, sr, timeline = synthesize(text, voice=VOICE, rate=RATE)
    sf.write(str(comfy.input_dir / name), wave, sr, subtype="FLOAT")
    prompt = comfy.workflow("talking_video")
    prompt["4"]["inputs"].update(audio=name, trim_silence=False)
    prompt["7"]["inputs"]["resolution"] = "512"
    prompt["8"]["inputs"]["filename_prefix"] = "lipclosure/" + Path(name).stem
    result = comfy.run(prompt)
    assert result.error is None, json.dumps(result.error)[:3000]
    mp4 = [f for f in result.files() if f["filename"].endswith(".mp4")]
    assert len(mp4) == 1, result.outputs
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "v.mp4"
        p.write_bytes(comfy.fetch(mp4[0]))
        frames, fps, _, _ = read_video(p)
    return frames, fps, timeline, lips.detect_faces(frames)


@pytest.fixture(scope="module")
def clip(comfy):
    frames, fps, timeline, face = _talking_clip(comfy, TEXT, "lipclosure_speech.wav")
    return frames, fps, timeline, lips.seen_lip_gap(face)


def test_lip_corners_round_on_o_and_u_and_spread_on_i(comfy):
    """The photo smiles: on o / u / w its corners must still come in (the smile gives way to the
    rounded lips), against the same face's i / e frames."""
    frames, fps, timeline, face = _talking_clip(comfy, ROUND_TEXT, "lipcorners_speech.wav")
    ratio, n_round, n_spread = lips.rounded_width_ratio(lips.seen_mouth_width(face), timeline, fps)
    print("rounded / spread mouth width", ratio, n_round, n_spread)
    assert n_round >= 8 and n_spread >= 8, (n_round, n_spread, timeline.phonemes)
    assert ratio < 0.9, ratio          # 0.87 here (SMILE_RELEASE 0.9)


def test_the_detector_sees_the_face_on_every_frame(clip):
    frames, fps, timeline, gap = clip
    assert frames.shape[1:] == (512, 512, 3)
    assert np.isfinite(gap).mean() > 0.95


def _photo_gap() -> float:
    from PIL import Image
    photo = np.asarray(Image.open(Path(__file__).resolve().parent.parent / "examples" / "astronaut.png").convert("RGB"))
    return lips.photo_lip_gap(photo)


def test_lips_close_in_the_pause_and_open_on_vowels(clip):
    """The photo's own lips stand apart (its teeth show): in the pause between the sentences the
    seen gap is under half the photo's, on the open vowels well over it."""
    frames, fps, timeline, gap = clip
    n = len(frames)
    photo = _photo_gap()
    assert photo > 0.1, photo                               # the photo shows its teeth
    pauses = lips.pause_intervals(timeline)
    inner = [(a, b) for a, b in pauses if a > 0.2 and b < timeline.duration - 0.05]   # between sentences
    assert inner and inner[0][1] - inner[0][0] >= 0.3, pauses
    t = (np.arange(n) + 0.5) / fps
    a, b = inner[0]
    mid = (t > a + 0.1) & (t < b - 0.04)                   # the jaw needs a few frames to settle
    assert mid.sum() >= 3, (a, b)
    assert np.nanmedian(gap[mid]) < 0.5 * photo, (gap[mid], photo)
    vowels = np.array([p in OPEN_VOWELS for p in timeline.at_frames(fps, n)])
    assert vowels.sum() >= 6
    # median: the test's own espeak run and the server's may place a phoneme edge a frame apart,
    # and a vowel frame beside a seal is still closing
    print("open vowels' median seen gap", np.nanmedian(gap[vowels]), "photo", photo)
    assert np.nanmedian(gap[vowels]) > 1.2 * photo, (np.nanmedian(gap[vowels]), photo)
    assert np.nanmedian(gap[vowels]) > 3 * np.nanmedian(gap[mid])


def test_lips_close_on_bilabials(clip):
    frames, fps, timeline, gap = clip
    thr = 0.5 * _photo_gap()
    t = (np.arange(len(frames)) + 0.5) / fps
    closed = []
    for p, s, e in zip(timeline.phonemes, timeline.starts, timeline.ends):
        if p in lips.BILABIALS:
            near = (t > s - 0.5 / fps) & (t < e + 0.5 / fps)   # the frames that sample the closure
            closed.append(bool(np.nanmin(gap[near]) < thr) if near.any() else False)
    assert len(closed) >= 5, timeline.phonemes
    assert np.mean(closed) >= 0.8, closed


def test_closed_by_the_issues_measure(clip):
    """issue 14's figures on this clip: frames in p/b/m and in pauses of 300 ms or more whose seen
    gap is under 10 % of the clip's 95th-percentile gap."""
    frames, fps, timeline, gap = clip
    n, thr = len(frames), lips.closed_threshold(gap)
    assert lips.closed_fraction(gap, lips.pause_frames(timeline, fps, n), thr) >= 0.9
    assert lips.closed_fraction(gap, lips.bilabial_frames(timeline, fps, n), thr) >= 0.6
