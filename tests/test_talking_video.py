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

from vlogger_core.audio import speech_io
from vlogger_core.body.model import load_body
from vlogger_core.body.overlay import project_fit
from vlogger_core.body.reference import fit_reference
from vlogger_core.media import read_audio, read_video

TEXT = "Hello there! Mama made pie, and papa ate it all. Wow!"  # lip closures and open vowels


@pytest.fixture(scope="module")
def video(comfy):
    prompt = comfy.workflow("talking_video_from_text")
    prompt["4"]["inputs"]["text"] = TEXT
    # also keep the speech the run spoke (espeak jitters a little between runs)
    prompt["99"] = {"class_type": "SaveAudio", "inputs": {"audio": ["4", 0],
                                                          "filename_prefix": "vlogger/test_speech"}}
    result = comfy.run(prompt)
    assert result.error is None, json.dumps(result.error)[:3000]
    mp4 = [f for f in result.files() if f["filename"].endswith(".mp4")]
    speech = [f for f in result.files() if f["filename"].endswith(".flac")]
    assert len(mp4) == 1 and len(speech) == 1, result.outputs
    with tempfile.TemporaryDirectory() as d:
        p, s = Path(d) / "v.mp4", Path(d) / "s.flac"
        p.write_bytes(comfy.fetch(mp4[0]))
        s.write_bytes(comfy.fetch(speech[0]))
        wave, sr = read_audio(s)
        return (*read_video(p), speech_io.to_mono(wave).numpy(), sr)


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
    frames, fps, audio, rate, wave, sr = video
    assert fps == 24 and frames.shape[1:] == (256, 256, 3)
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
    assert np.corrcoef(a[:n], b[:n])[0, 1] > 0.95
    # background outside the person stays put (top corners: flag and sky)
    corners = frames[:, :24, :24].astype(np.float32), frames[:, :24, -24:].astype(np.float32)
    for c in corners:
        assert np.abs(c - c[0]).mean() < 2.0


def test_mouth_moves_with_the_speech(video):
    frames, fps, audio, rate, _, _ = video
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


def test_render_range_is_the_windows_in_one_array():
    """Core side (no server): what VLOGGER_RenderFrames returns, and the refusals it maps."""
    from dataclasses import replace

    from vlogger_core.errors import VloggerError
    from vlogger_core.motion.params import ARKIT52, Motion
    from vlogger_core.render.talking_video import TalkingVideoRenderer
    body = load_body()
    photo = torch.from_numpy(np.asarray(Image.open(Path(__file__).parent.parent / "examples" /
                                                   "astronaut.png").convert("RGB"), np.float32) / 255)
    fit = fit_reference(photo, body, "manual")
    r = TalkingVideoRenderer(body, fit, 64, 64)
    m = Motion.neutral(7, 25.0, body.expression_set)
    m.expression[2:5, ARKIT52.index("jawOpen")] = 1.0
    seen = []
    whole = r.render_range(m, 1, 6, window=2, progress=lambda d, t: seen.append((d, t)))
    assert whole.shape == (5, 64, 64, 3) and seen == [(2, 5), (4, 5), (5, 5)]
    assert np.array_equal(whole, r.render(m, 1, 6))
    assert np.abs(whole[2] - whole[0]).max() > 0.1          # the open jaw shows
    for call, arg in ((lambda: r.render_range(m, 7), "start"),
                      (lambda: r.render_range(Motion.neutral(3, 25.0, "smplx10")), "motion"),
                      (lambda: TalkingVideoRenderer(body, replace(fit, body_name="other"), 64, 64), "fit")):
        with pytest.raises(VloggerError) as e:
            call()
        assert e.value.arg == arg and e.value.fix
