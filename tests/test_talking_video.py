"""The default talking video through the real server: a playable MP4 whose length is the
speech's, whose mouth moves with the speech, whose background stays still, and whose audio is
the speech."""
import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vlogger_core import tts
from vlogger_core.body_model import load_body
from vlogger_core.reference_fit import fit_reference, project_fit
from vlogger_core.video_writer import read_video

TEXT = "Hello there! Mama made pie, and papa ate it all. Wow!"


@pytest.fixture(scope="module")
def video(comfy):
    prompt = comfy.workflow("talking_video_from_text")
    prompt["4"]["inputs"]["text"] = TEXT
    result = comfy.run(prompt)
    assert result.error is None, json.dumps(result.error)[:3000]
    mp4 = [f for f in result.files() if f["filename"].endswith(".mp4")]
    assert len(mp4) == 1
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "v.mp4"
        p.write_bytes(comfy.fetch(mp4[0]))
        return read_video(p)


def _mouth_box(size: int):
    """Where the fitted body's lips are in the output frames (same photo, same detector)."""
    body = load_body()
    photo = torch.from_numpy(np.asarray(Image.open(Path(__file__).parent.parent / "examples" /
                                                   "astronaut.png").convert("RGB"), np.float32) / 255)
    fit = fit_reference(photo, body, "auto")
    uv = project_fit(fit, body)["vertices"].numpy() * size / photo.shape[1]
    lips = np.unique(body.faces[body.face_labels == body.part_id("lips")])
    x0, y0 = uv[lips].min(0)
    x1, y1 = uv[lips].max(0)
    return int(x0) - 2, int(y0) - 2, int(np.ceil(x1)) + 3, int(np.ceil(y1)) + 3


def test_length_audio_and_stability(video):
    frames, fps, audio, rate = video
    assert fps == 24 and frames.shape[1:] == (256, 256, 3)
    # the speech's duration (espeak jitters by a few ms from run to run)
    wave, sr, _ = tts.synthesize(TEXT, voice="en-us+f3", rate=165, pitch=55, pitch_range=60)
    seconds = len(wave) / sr
    assert abs(len(frames) / fps - seconds) <= 1.5 / fps + 0.05
    assert audio is not None and abs(len(audio) / rate - len(frames) / fps) < 0.1
    # the audio is the speech: its loudness envelope follows the synthesized one
    def env(x, r):
        hop = r // 50
        n = len(x) // hop
        return np.sqrt((x[: n * hop].reshape(n, hop) ** 2).mean(1))
    a, b = env(audio, rate), env(wave, sr)
    n = min(len(a), len(b))
    assert np.corrcoef(a[:n], b[:n])[0, 1] > 0.8
    # background outside the person stays put (top corners: flag and sky)
    corners = frames[:, :24, :24].astype(np.float32), frames[:, :24, -24:].astype(np.float32)
    for c in corners:
        assert np.abs(c - c[0]).mean() < 2.0


def test_mouth_moves_with_the_speech(video):
    frames, fps, audio, rate = video
    x0, y0, x1, y1 = _mouth_box(frames.shape[2])
    mouth = frames[:, y0:y1, x0:x1].astype(np.float32).mean(-1)
    # how open the mouth looks: dark pixels in the mouth box (cavity) per frame
    darkness = (mouth < 70).mean((1, 2))
    assert darkness.max() - darkness.min() > 0.05, "the mouth region never changes"
    # open and closed frames differ in the mouth region much more than in the background
    open_f, closed_f = int(darkness.argmax()), int(darkness.argmin())
    diff_mouth = np.abs(mouth[open_f] - mouth[closed_f]).mean()
    bg = frames[:, :24, :24].astype(np.float32).mean(-1)
    assert diff_mouth > 10 * (np.abs(bg[open_f] - bg[closed_f]).mean() + 0.1)
    # lip sync: the opening follows the loudness of the speech
    hop = rate / fps
    energy = np.array([np.sqrt(np.mean(audio[int(i * hop):int((i + 1) * hop)] ** 2) + 1e-12)
                       for i in range(len(frames))])
    assert np.corrcoef(darkness, energy)[0, 1] > 0.3
