"""Region-inpainting re-dub (core): only the region changes, everything outside the feathered
band is the original pixel, bit for bit; the mask is the mouth (not the eyes); the mouth follows
the NEW speech; the output follows the new motion's length; the diffusion path keeps the same
guarantee."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vlogger_core.body.model import load_body
from vlogger_core.body.track import fit_video
from vlogger_core.edit.redub import (
    InpaintError,
    RedubSettings,
    feathered_mask,
    pingpong,
    redub_frames,
    region_motion,
    source_index,
)
from vlogger_core.media import read_video
from vlogger_core.motion.params import ARKIT52, Motion

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))


@pytest.fixture(scope="module")
def video():
    frames, fps, _, _ = read_video(REPO / "examples" / "talking_astronaut.mp4")
    return frames[:30], fps                       # uint8, as decoded


@pytest.fixture(scope="module")
def body():
    return load_body()


def _speaking(n: int, fps: float, closed_every: int = 0) -> Motion:
    """A new 'speech' motion: the jaw opens wide (closed on every `closed_every`-th frame); an
    eye blink that the mouth edit must ignore."""
    m = Motion.neutral(n, fps)
    m.expression[:, ARKIT52.index("jawOpen")] = 0.9
    if closed_every:
        m.expression[::closed_every, ARKIT52.index("jawOpen")] = 0.0
    m.expression[:, ARKIT52.index("eyeBlinkLeft")] = 1.0
    return m


@pytest.fixture(scope="module")
def redub(body, video):
    frames, fps = video
    n = 40                                        # longer than the 30-frame video: ping-pong
    outs, masks = zip(*redub_frames(body, frames, _speaking(n, fps, closed_every=4),
                                    RedubSettings(window=16), fps))
    orig = np.stack([frames[pingpong(i, len(frames))] for i in range(n)]).astype(np.float32) / 255.0
    return np.concatenate(outs), np.concatenate(masks), orig


def test_region_motion_keeps_only_the_region():
    m = _speaking(10, 24.0)
    r = region_motion(m, "mouth")
    assert torch.equal(r.expression[:, ARKIT52.index("jawOpen")], m.expression[:, ARKIT52.index("jawOpen")])
    assert float(r.expression[:, ARKIT52.index("eyeBlinkLeft")].abs().max()) == 0.0
    with pytest.raises(InpaintError, match="unknown region"):
        region_motion(m, "hair")


def test_length_mapping_pingpong_and_fps():
    assert [pingpong(t, 4) for t in range(9)] == [0, 1, 2, 3, 2, 1, 0, 1, 2]
    assert source_index(10, 100, motion_fps=25.0, video_fps=50.0) == 20    # nearest in time
    assert source_index(5, 4, 24.0, 24.0) == 1


def test_feathered_mask_band():
    region = np.zeros((40, 40), bool)
    region[18:22, 18:22] = True
    m = feathered_mask(region, dilate=2, feather=3)
    assert m[20, 20] == 1.0 and m[0, 0] == 0.0
    assert 0 < m[20, 26] < 1                     # inside the soft band
    assert m[20, 30] == 0.0                      # beyond it: exactly zero


def test_outside_the_band_is_bit_identical(redub, video):
    out, mask, orig = redub
    frames, _ = video
    assert out.shape == (40,) + frames.shape[1:] and mask.shape == (40,) + frames.shape[1:3]
    outside = mask == 0
    assert 0.95 < outside.mean() < 0.999                           # a small, non-empty region
    assert np.array_equal(out[outside], orig[outside])            # exact float equality
    u8 = lambda x: (x * 255 + 0.5).astype(np.uint8)               # noqa: E731
    assert np.array_equal(u8(out)[outside], np.stack([frames[pingpong(i, 30)] for i in range(40)])[outside])


def test_the_mouth_follows_the_new_speech(redub):
    out, mask, orig = redub
    inside = mask > 0.99
    assert np.abs(out - orig)[inside].mean() > 0.02                # the mouth was redrawn
    # wide-open frames (jawOpen 0.9) are darker inside the mask (the mouth cavity) than the
    # closed ones (every 4th frame)
    lum = np.array([out[i][inside[i]].mean() for i in range(len(out))])
    closed, open_ = lum[::4], np.delete(lum, np.s_[::4])
    assert open_.mean() < closed.mean() - 0.02, (open_.mean(), closed.mean())


def test_the_mask_is_the_mouth_not_the_eyes(redub, body, video):
    _, mask, _ = redub
    frames, fps = video
    # the mouth's lips, from the body fitted to the video, lie inside the mask
    track = fit_video(body, frames[:1], "auto", 30)
    from vlogger_core.edit.redub import _Editor, _FrameView
    ed = _Editor(body, track, Motion.neutral(1, fps), "mouth", 256, 256)
    _, m_lips, _ = ed.window(_FrameView(lambda s: frames[s].astype(np.float32) / 255), [0], 0, 1, 0, 0)
    ys, xs = np.nonzero(m_lips[0] > 0.5)
    assert len(ys) > 20
    assert mask[0][ys, xs].min() == 1.0
    # ... and the eyes (and brows) of the same fit lie outside it
    ed = _Editor(body, track, Motion.neutral(1, fps), "eyes", 256, 256)
    _, m_eyes, _ = ed.window(_FrameView(lambda s: frames[s].astype(np.float32) / 255), [0], 0, 1, 0, 0)
    ey, ex = np.nonzero(m_eyes[0] > 0.5)
    assert len(ey) > 20 and ey.mean() < ys.mean() - 10
    assert (mask[0][ey, ex] == 0).all()
    ys, xs = np.nonzero(mask[0] > 0.5)
    assert 100 < xs.mean() < 160, xs.mean()


def test_eyes_region_sits_higher(body, video):
    frames, fps = video
    (_, m), = redub_frames(body, frames[:4], _speaking(4, fps), RedubSettings(region="eyes", window=4), fps)
    ys, _ = np.nonzero(m[0] > 0.5)
    assert len(ys) and ys.mean() < 70


def test_output_follows_the_speech_length(body, video):
    frames, fps = video
    outs = [f for f, _ in redub_frames(body, frames[:30], _speaking(12, fps), RedubSettings(window=5), fps)]
    assert [len(f) for f in outs] == [5, 5, 2]                    # cut to the speech, streamed


def test_needs_a_face(body):
    noise = np.random.default_rng(0).uniform(0, 1, (4, 128, 128, 3)).astype(np.float32)
    with pytest.raises(InpaintError, match="no face") as e:
        list(redub_frames(body, noise, _speaking(4, 24.0), RedubSettings(detector="opencv")))
    assert e.value.arg == "frames" and e.value.fix
    with pytest.raises(InpaintError, match="no frames"):
        list(redub_frames(body, noise[:0], _speaking(4, 24.0)))
    with pytest.raises(InpaintError, match="unknown detector") as e:       # the tracker blames its input
        list(redub_frames(body, noise, _speaking(4, 24.0), RedubSettings(detector="yolo")))
    assert e.value.arg == "detector" and "opencv" in e.value.fix


def test_masked_diffusion_keeps_the_outside(body, video):
    """A tiny RANDOM video model (noise inside the mask, not a result): the known-region
    replacement and the exact composite still keep every pixel outside the band."""
    from make_tiny_video_model import randomize_trained_parts, tiny_pixel_spec

    from vlogger_core.diffusion.model import build_video_model

    frames, fps = video
    model = build_video_model(tiny_pixel_spec(num_parts=len(body.part_names) - 1, num_frames=4, size=32))
    randomize_trained_parts(model)
    n = 7                                           # two windows of 3 new frames + 1 context
    outs, masks = zip(*redub_frames(body, frames[:8], _speaking(n, fps), RedubSettings(steps=2), fps,
                                    video_model=model))
    out, mask = np.concatenate(outs), np.concatenate(masks)
    orig = frames[:n].astype(np.float32) / 255.0
    assert out.shape == (n, 256, 256, 3) and [len(o) for o in outs] == [3, 3, 1]
    assert np.array_equal(out[mask == 0], orig[mask == 0])
    assert np.abs(out - orig)[mask > 0.99].mean() > 0.02
    with pytest.raises(InpaintError, match="body parts") as e:
        bad = build_video_model(tiny_pixel_spec(num_parts=3, num_frames=4, size=32))
        list(redub_frames(body, frames[:4], _speaking(4, fps), RedubSettings(), fps, video_model=bad))
    assert e.value.arg == "video_model"


def test_opencv_fallback_keeps_the_outside(body, video):
    """Without mediapipe's landmarks: first-frame fit + face-box tracking, same guarantee."""
    frames, fps = video
    (out, mask), = redub_frames(body, frames[:6], _speaking(6, fps), RedubSettings(detector="opencv", window=6), fps)
    orig = frames[:6].astype(np.float32) / 255.0
    assert 0.001 < (mask > 0).mean() < 0.1
    assert np.array_equal(out[mask == 0], orig[mask == 0])
    assert np.abs(out - orig)[mask > 0.99].mean() > 0.02
