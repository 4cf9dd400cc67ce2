"""Live engine (vlogger_core/live): streamed motion equals the batch sampler's, any chunk size gives
the same frames, a stall gives idle motion (not a frozen frame), barge-in settles without a jump."""
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from _pipeline import example_photo, example_speech, load_models  # noqa: E402

from vlogger_core.body.reference import fit_reference
from vlogger_core.errors import VloggerError
from vlogger_core.live.causal import CausalWindow, ddim_coefficients, ddim_step, gelu
from vlogger_core.live.engine import LiveEngine
from vlogger_core.live.motion_stream import (
    LiveSettings,
    MotionStream,
    lookahead_seconds,
)
from vlogger_core.live.session import LiveSession
from vlogger_core.motion.model import sinusoidal
from vlogger_core.motion.params import ARKIT52, Motion
from vlogger_core.motion.sampling import (
    SampleSettings,
    make_scheduler,
    mouth_opening,
    sample_motion,
)
from vlogger_core.render.talking_video import TalkingVideoRenderer

# small windows so a few seconds cross several window hand-overs; few steps: fast
FAST = dict(steps=6, window=48, context=12, blend=4, lip_closure=0.0)


@pytest.fixture(scope="module")
def models():
    return load_models()


@pytest.fixture(scope="module")
def renderer(models):
    body, _ = models
    fit = fit_reference(example_photo(), body)
    return TalkingVideoRenderer(body, fit, 128, 128)


def _stream(model, wave, chunk, settings, flush=True):
    ms = MotionStream(model, settings)
    parts = [ms.push(wave[i:i + chunk]) for i in range(0, len(wave), chunk)]
    if flush:
        parts.append(ms.flush())
    parts = [p for p in parts if p is not None]
    return (torch.cat([p.expression for p in parts]), torch.cat([p.rot6d for p in parts]))


def test_causal_window_is_the_model(models):
    """The cached block-by-block forward gives the network's own x0 (same noise, same audio)."""
    _, model = models
    torch.manual_seed(0)
    n, d = 20, model.config.motion_dim
    audio = torch.randn(n, model.config.audio_dim)
    g1 = torch.Generator().manual_seed(5)
    w = CausalWindow(model, n, torch.zeros(0, d), 1, 1.0, "ddim", g1, "cpu")
    x = w.noise.clone()
    t = int(w.sched.timesteps[0])
    with torch.no_grad():
        ref = model(x, torch.full((1,), t, dtype=torch.long), audio[None], torch.zeros(1, n))
        out = []
        for a, b in ((0, 6), (6, 8), (8, 20)):      # uneven token blocks
            m = model.audio_mlp(audio[None, a:b].reshape(1, (b - a) // 2, -1))
            emb = m + sinusoidal(torch.arange(a // 2, b // 2), model.config.d_model)[None] + w.step_emb[0]
            out.append(w._forward(x[:, a:b], emb, torch.zeros(1, b - a), a // 2, 0))
    assert torch.allclose(torch.cat(out, 1), ref, atol=1e-5), (torch.cat(out, 1) - ref).abs().max()


def test_ddim_step_is_diffusers(models):
    """The live window's DDIM update (per-step coefficients computed once) is diffusers'
    DDIMScheduler.step bit for bit, at every step of 25 and of 6."""
    _, model = models
    g = torch.Generator().manual_seed(0)
    for steps in (25, 6):
        sched = make_scheduler(model, "ddim")
        sched.set_timesteps(steps)
        coef = ddim_coefficients(sched)
        assert len(coef) == steps
        for i, t in enumerate(sched.timesteps):
            x0, x = torch.randn((2, 1, 4, model.config.motion_dim), generator=g)
            ref = sched.step(x0, t, x).prev_sample
            assert torch.equal(ddim_step(coef[i], x0, x), ref), (steps, i, (ddim_step(coef[i], x0, x) - ref).abs().max())


def test_window_gelu_is_torch_gelu():
    x = torch.linspace(-12, 12, 4001)
    assert torch.allclose(gelu(x), torch.nn.functional.gelu(x), rtol=0, atol=2e-6)


@pytest.mark.parametrize("guidance,closure", [(1.0, 1.0), (2.0, 0.0)])
def test_streamed_motion_equals_batch(models, guidance, closure):
    """10 ms chunks over 6 s of speech, windows of 48 frames (5 hand-overs): the batch motion,
    frame for frame, but for the stream's last frames (the stream sees silence after its end
    where the batch sees the file end)."""
    _, model = models
    wave = example_speech(6.0)
    st = SampleSettings(seed=3, guidance=guidance, add_blinks=True, **{**FAST, "lip_closure": closure})
    ref = sample_motion(model, wave, 24.0, st)
    ex, r6 = _stream(model, wave, 160, LiveSettings(fps=24, sample=st))
    assert ex.shape[0] == ref.num_frames == 144
    tail = math.ceil(lookahead_seconds(24) * 24)           # frames that see the end differently
    de = (ex - ref.expression).abs().amax(1)
    dr = (r6 - ref.rot6d).abs().flatten(1).amax(1)
    assert de[:-tail].max() < 1e-4 and dr[:-tail].max() < 1e-4, (de.max(), dr.max())
    assert de[-tail:].max() < 0.5                            # the end: close, not equal
    # the motion moves (a comparison of two still motions would prove nothing)
    assert ref.expression[:, ARKIT52.index("jawOpen")].std() > 0.02


def test_body_layer_anchors_hand_over_without_a_jump(models):
    """Past 1.5 anchors the body layer reads the speech from a later anchor, cross-faded: the
    motion equals batch before that, and no frame-to-frame step of the stream is larger than
    the batch motion's largest (anchors every 4 s over 12 s: 2 hand-overs)."""
    _, model = models
    wave = example_speech(12.0)
    st = SampleSettings(seed=5, add_blinks=False, **FAST)
    ref = sample_motion(model, wave, 24.0, st)
    ex, r6 = _stream(model, wave, 1600, LiveSettings(fps=24, sample=st, anchor_s=4))
    dr = (r6 - ref.rot6d).abs().flatten(1).amax(1)
    assert dr[:6 * 24].max() < 1e-4                         # 1.5 anchors: the batch motion
    assert dr[7 * 24:-8].max() > 1e-4                        # later: another anchor's layer
    step = lambda r: (r[1:] - r[:-1]).abs().flatten(1).amax(1)
    assert step(r6[:-8]).max() <= 1.1 * step(ref.rot6d).max(), (step(r6).max(), step(ref.rot6d).max())
    assert torch.allclose(ex[:-8], ref.expression[:-8], atol=1e-4)   # the face does not depend on it
    # 5 s chunks (blocks spanning an anchor's start): the same motion
    ex5, r65 = _stream(model, wave, 5 * 16000, LiveSettings(fps=24, sample=st, anchor_s=4))
    assert torch.allclose(r65, r6, atol=1e-4) and torch.allclose(ex5, ex, atol=1e-4)


def test_chunk_sizes_give_the_same_frames(models, renderer):
    _, model = models
    wave = example_speech(2.5)
    settings = LiveSettings(fps=24, sample=SampleSettings(seed=1, add_blinks=True, **FAST))
    runs = {}
    for chunk_s in (0.01, 0.1, 1.0):
        eng = LiveEngine(model, renderer, settings)
        n = int(chunk_s * 16000)
        frames = [f for i in range(0, len(wave), n) for f in eng.push(wave[i:i + n])]
        runs[chunk_s] = frames
    base = runs[0.01]
    # frames come out in order from 0, with their span's start as the timestamp and their audio
    assert [f.index for f in base] == list(range(len(base)))
    assert all(abs(f.time - f.index / 24) < 1e-9 for f in base)
    assert len(base) >= int(2.5 * 24 - lookahead_seconds(24) * 24) - 1
    joined = np.concatenate([f.audio for f in base])
    assert np.array_equal(joined, wave[:len(joined)].numpy())
    for chunk_s, frames in runs.items():
        k = min(len(frames), len(base))
        assert k >= len(base) - 24, (chunk_s, len(frames), len(base))
        # the motion agrees to float rounding (blocks of other sizes sum in another order), so a
        # pixel may round the other way: at most 2 levels of 255 on a few pixels
        for a, b in zip(base[:k], frames[:k]):
            d = np.abs(a.image.astype(np.int16) - b.image)
            assert a.index == b.index and d.max() <= 2 and (d > 0).mean() < 0.002, (chunk_s, a.index, d.max(),
                                                                                  (d > 0).mean())
    # and the frames change (the mouth moves)
    diffs = [np.abs(base[i + 1].image.astype(int) - base[i].image).mean() for i in range(len(base) - 1)]
    assert max(diffs) > 0.3


def _run_session(model, renderer, seed, blinks, speech_s, ticks=200, barge_at=None):
    """A LiveSession on a fake clock fed `speech_s` of speech at once, stepped every 20 ms;
    `barge_at`: the tick of a reset. -> (engine, session, frames, motions, frames out at the reset)."""
    eng = LiveEngine(model, renderer, LiveSettings(fps=24, sample=SampleSettings(seed=seed, add_blinks=blinks, **FAST)))
    clock = [0.0]
    sess = LiveSession(eng, clock=lambda: clock[0])
    sess.start(0.0)
    sess.feed(example_speech(speech_s).numpy())
    frames, motions, stop_at = [], [], None
    for k in range(ticks):
        clock[0] = k * 0.02
        if k == barge_at:
            sess.reset()
            stop_at = eng.frames_out
        new = sess.step()
        if new:
            motions.append(eng.last_motion)
        frames += new
    return eng, sess, frames, motions, stop_at


def test_stall_gives_idle_motion(models, renderer):
    """1 s of speech, then nothing for 3 s: the session fills the stall with silence and the face
    keeps moving (breathing, blinks, small head moves), its mouth settled."""
    _, model = models
    _, sess, frames, motions, _ = _run_session(model, renderer, 2, True, 1.0)   # 4 s of wall clock
    stall = [f for f in frames if f.time >= 1.3]
    assert len(frames) >= 4 * 24 - 14, len(frames)                 # frames kept coming
    assert len(stall) >= 2.2 * 24
    assert sess.silence_samples >= 2.5 * 16000
    assert all(np.abs(f.audio).max() == 0 for f in stall)            # it is silence ...
    imgs = np.stack([f.image for f in stall]).astype(np.int16)
    step = np.abs(np.diff(imgs, axis=0)).mean((1, 2, 3))
    assert (step > 0).mean() > 0.9, step                              # ... and not a held frame
    m = _cat(motions)
    idle = m.slice(m.num_frames - len(stall), m.num_frames)
    assert idle.rot6d.std(0).max() > 1e-3                             # the body keeps moving
    assert mouth_opening(idle).mean() < 0.2, mouth_opening(idle).mean()


def _cat(motions):
    m0 = motions[0]
    return Motion(m0.fps, m0.expression_set, torch.cat([m.expression for m in motions]),
                  torch.cat([m.rot6d for m in motions]), list(m0.joints))


def test_barge_in_settles_without_a_jump(models, renderer):
    """The speaker stops mid-sentence: the mouth settles into idle within half a second, and no
    frame-to-frame step after the stop is larger than the speech's own largest step."""
    _, model = models
    _, _, _, motions, stop_at = _run_session(model, renderer, 4, False, 4.0, barge_at=75)   # reset at 1.5 s
    m = _cat(motions)
    x = m.as_vector()
    steps = (x[1:] - x[:-1]).abs().amax(1)
    speech_max = steps[:stop_at - 1].max()
    assert steps[stop_at - 1:].max() <= 1.05 * speech_max, (steps[stop_at - 1:].max(), speech_max)
    mouth = mouth_opening(m)
    late = mouth[stop_at + 12:]                     # half a second after the stop
    assert len(late) > 24 and late.max() < mouth[:stop_at].max()
    assert mouth[:stop_at].max() > 0.2             # it was speaking


def test_bad_input(models):
    _, model = models
    with pytest.raises(VloggerError) as e:
        MotionStream(model, LiveSettings(fps=23.976))
    assert e.value.arg == "fps"
    with pytest.raises(VloggerError) as e:
        MotionStream(model, LiveSettings(sample=SampleSettings(window=64, context=40)))
    assert e.value.arg == "context"
    ms = MotionStream(model)
    with pytest.raises(VloggerError) as e:
        ms.push(np.array([0.0, np.nan], np.float32))
    assert e.value.arg == "wave16k"
