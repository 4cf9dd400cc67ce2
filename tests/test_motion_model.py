"""Motion diffusion model (stage 1): loss, causal mask, seeding, windows, save/load.

Tiny random models here test the mechanics only; the shipped model is tested in
test_motion_shipped.py.
"""
import json
import math

import pytest
import torch

from vlogger_core.audio.features import FEATURE_DIM, audio_features
from vlogger_core.motion.model import (
    MotionDiffusion,
    MotionModelConfig,
    load_motion_model,
    motion_loss,
    save_motion_model,
)
from vlogger_core.motion.params import Motion
from vlogger_core.motion.sampling import SampleSettings, apply_controls, sample_motion


def tiny(seed=0, **kw):
    torch.manual_seed(seed)
    cfg = MotionModelConfig(d_model=32, n_heads=2, dropout=0.0, **kw)
    m = MotionDiffusion(cfg).eval()
    for p in m.parameters():   # a random but not-degenerate network
        torch.nn.init.normal_(p, std=0.2) if p.dim() > 1 else None
    return m


def speechlike(seconds, sr=16000, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * sr)) / sr
    env = (torch.sin(2 * math.pi * 3 * t).clamp_min(0)) ** 2
    return (0.3 * env * torch.sin(2 * math.pi * 180 * t) + 0.01 * torch.randn(len(t), generator=g)).float()


def test_temporal_loss_penalises_frame_differences_with_separate_lambdas():
    e, d = 52, 52 + 47 * 6
    x0 = torch.zeros(2, 20, d)
    valid = torch.ones(2, 20)
    smooth = torch.zeros(2, 20, d)
    jittery_expr = smooth.clone()
    jittery_expr[:, ::2, :e] = 0.5          # alternate expression frames
    jittery_pose = smooth.clone()
    jittery_pose[:, ::2, e:] = 0.5
    base = motion_loss(smooth, x0, valid, e, 1.0, 1.0)
    assert float(base["l_temp_expr"]) == 0 and float(base["l_temp_pose"]) == 0
    je = motion_loss(jittery_expr, x0, valid, e, 1.0, 1.0)
    assert float(je["l_temp_expr"]) > 0.2 and float(je["l_temp_pose"]) == 0
    # The same jitter costs more when its lambda is larger, and nothing when it is 0.
    lo = motion_loss(jittery_expr, x0, valid, e, 0.0, 5.0)["loss"]
    hi = motion_loss(jittery_expr, x0, valid, e, 5.0, 0.0)["loss"]
    assert float(hi) > float(lo) + 1.0
    assert torch.isclose(lo, je["l_diff"])
    jp = motion_loss(jittery_pose, x0, valid, e, 0.0, 2.0)
    assert torch.isclose(jp["loss"], jp["l_diff"] + 2.0 * jp["l_temp_pose"])
    assert float(jp["l_temp_pose"]) > 0.2
    # A constant offset (no frame differences) is not penalised by L_temp, only by L_diff.
    off = motion_loss(torch.full((2, 20, d), 0.3), x0, valid, e, 1.0, 1.0)
    assert float(off["l_temp_expr"]) == 0 and float(off["l_diff"]) > 0


def test_temporal_loss_gradient_pulls_neighbours_together():
    pred = torch.zeros(1, 3, 60, requires_grad=True)
    with torch.no_grad():
        pred[0, 1] = 1.0
    l = motion_loss(pred, pred.detach(), torch.ones(1, 3), 10, 1.0, 1.0)["loss"]
    l.backward()
    assert (pred.grad[0, 1] > 0).all() and (pred.grad[0, 0] < 0).all()


def test_causal_mask_future_audio_does_not_change_past_frames():
    m = tiny()
    n, p = 40, m.config.frames_per_token
    x = torch.randn(1, n, m.config.motion_dim)
    a = torch.randn(1, n, FEATURE_DIM)
    t = torch.tensor([500])
    with torch.no_grad():
        y = m(x, t, a)
        a2 = a.clone()
        a2[:, 24:] = torch.randn(1, n - 24, FEATURE_DIM) * 3
        y2 = m(x, t, a2)
        x2 = x.clone()
        x2[:, 30:] += 5
        y3 = m(x2, t, a)
    assert 24 % p == 0
    assert torch.equal(y[:, :24], y2[:, :24])
    assert (y[:, 24:] - y2[:, 24:]).abs().max() > 1e-3     # the change does reach later frames
    assert torch.equal(y[:, :30], y3[:, :30])


def test_causal_on_real_audio_features():
    """Editing the waveform after time T leaves motion before T unchanged (one token of slack)."""
    m = tiny()
    wave = speechlike(3.0)
    fps = m.config.fps
    f1 = m.normalize_audio(audio_features(wave, fps))
    w2 = wave.clone()
    w2[int(1.6 * 16000):] = torch.randn(len(wave) - int(1.6 * 16000)) * 0.5
    f2 = m.normalize_audio(audio_features(w2, fps))
    cut = int(1.6 * fps) - 2   # frames whose features end before 1.6 s (minus half a mel window)
    assert torch.equal(f1[:cut], f2[:cut])
    x = torch.randn(1, f1.shape[0], m.config.motion_dim)
    with torch.no_grad():
        y1, y2 = m(x, torch.tensor([10]), f1[None]), m(x, torch.tensor([10]), f2[None])
    safe = cut - cut % m.config.frames_per_token
    assert torch.equal(y1[:, :safe], y2[:, :safe])


def test_seed_same_motion_new_seed_different():
    m = tiny()
    wave = speechlike(2.0)
    s = SampleSettings(seed=7, steps=4, window=32, context=8)
    a = sample_motion(m, wave, 25.0, s)
    b = sample_motion(m, wave, 25.0, s)
    c = sample_motion(m, wave, 25.0, SampleSettings(seed=8, steps=4, window=32, context=8))
    assert torch.equal(a.as_vector(), b.as_vector())
    assert (a.as_vector() - c.as_vector()).abs().max() > 1e-3
    assert a.num_frames == round(2.0 * 25)


def test_any_fps_gives_round_duration_frames():
    m = tiny()
    wave = speechlike(1.37)
    for fps in (24.0, 25.0, 30.0, 60.0):
        mo = sample_motion(m, wave, fps, SampleSettings(steps=2))
        assert mo.num_frames == round(1.37 * fps) and mo.fps == fps
        r = mo.rotation_matrices()
        assert torch.allclose(r.transpose(-1, -2) @ r, torch.eye(3).expand_as(r), atol=1e-4)


def test_long_audio_windows_bounded_and_progress():
    m = tiny()
    seen = []
    orig = m.forward

    def spy(x_t, *a, **k):
        seen.append(x_t.shape[1])
        return orig(x_t, *a, **k)

    m.forward = spy
    calls = []
    wave = torch.zeros(16000 * 600)      # 10 minutes
    wave[::7] = 0.05
    mo = sample_motion(m, wave, 25.0, SampleSettings(steps=1, window=256, context=32),
                       progress=lambda d, t: calls.append((d, t)))
    assert mo.num_frames == 15000
    assert max(seen) <= 256                     # the network never sees more than one window
    assert calls[-1][0] == calls[-1][1] == len(seen)
    assert torch.isfinite(mo.as_vector()).all()


def test_interrupt_stops_sampling():
    m = tiny()

    class Stop(Exception):
        pass

    def interrupt():
        raise Stop()

    with pytest.raises(Stop):
        sample_motion(m, speechlike(1.0), 25.0, SampleSettings(steps=3), interrupt=interrupt)


def test_save_load_roundtrip(tmp_path):
    m = tiny(seed=3)
    m.set_stats(torch.rand(m.config.motion_dim), torch.rand(m.config.motion_dim) + 0.5,
                torch.rand(FEATURE_DIM), torch.rand(FEATURE_DIM) + 0.5)
    path = tmp_path / "m.safetensors"
    save_motion_model(m, str(path), {"step": 12})
    m2 = load_motion_model(str(path))
    assert m2.config == m.config
    assert m2.training_info["step"] == "12"
    for (k, v), (k2, v2) in zip(m.state_dict().items(), m2.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    wave = speechlike(1.0)
    s = SampleSettings(seed=1, steps=3)
    assert torch.equal(sample_motion(m, wave, 25, s).as_vector(), sample_motion(m2, wave, 25, s).as_vector())
    bad = tmp_path / "bad.safetensors"
    from safetensors.torch import save_file
    save_file({"w": torch.zeros(2)}, str(bad))
    with pytest.raises(ValueError, match="not a VLOGGER motion model"):
        load_motion_model(str(bad))


def test_artist_controls_scale_the_right_parts():
    n = 10
    torch.manual_seed(0)
    base = Motion.neutral(n, 25.0)
    from vlogger_core.motion.params import axis_angle_to_matrix, matrix_to_rot6d
    aa = torch.randn(n, 47, 3) * 0.2
    mo = Motion(25.0, "arkit52", torch.rand(n, 52) * 0.5, matrix_to_rot6d(axis_angle_to_matrix(aa)))
    still = apply_controls(mo, 1.0, 0.0, 1.0)
    j = mo.joints.index("head")
    assert torch.allclose(still.rot6d[:, j], base.rot6d[:, j], atol=1e-5)
    k = mo.joints.index("left_elbow")
    assert torch.allclose(still.rot6d[:, k], mo.rot6d[:, k])
    nogest = apply_controls(mo, 1.0, 1.0, 0.0)
    assert torch.allclose(nogest.rot6d[:, k], base.rot6d[:, k], atol=1e-5)
    assert torch.allclose(nogest.rot6d[:, mo.joints.index("right_index2")], base.rot6d[:, 0], atol=1e-5)
    calm = apply_controls(mo, 0.0, 1.0, 1.0)
    from vlogger_core.motion.params import ARKIT52
    assert float(calm.expression[:, ARKIT52.index("jawOpen")].abs().max()) == 0
    b = ARKIT52.index("eyeBlinkLeft")
    assert torch.equal(calm.expression[:, b], mo.expression[:, b])   # blinks untouched


def test_body_layer_goes_on_the_body_only_and_is_seeded():
    m, wave = tiny(), speechlike(2.0)
    s = dict(steps=2, window=32, context=8)
    plain = sample_motion(m, wave, 25.0, SampleSettings(seed=4, body_layer=False, **s))
    live = sample_motion(m, wave, 25.0, SampleSettings(seed=4, **s))
    assert torch.equal(live.expression, plain.expression)
    for j in ("jaw", "left_eye_smplhf", "right_eye_smplhf", "head"):
        k = live.joints.index(j)
        assert torch.equal(live.rot6d[:, k], plain.rot6d[:, k]), j
    for j in ("spine1", "spine3", "left_collar", "neck"):
        k = live.joints.index(j)
        assert float((live.rot6d[:, k] - plain.rot6d[:, k]).abs().max()) > 1e-4, j
    assert torch.equal(sample_motion(m, wave, 25.0, SampleSettings(seed=4, **s)).rot6d, live.rot6d)
    still = sample_motion(m, wave, 25.0, SampleSettings(seed=4, head_motion=0.0, gesture_amount=0.0, **s))
    k = still.joints.index("spine1")
    assert torch.allclose(still.rot6d[:, k], Motion.neutral(1, 25.0).rot6d[0, 0].expand_as(still.rot6d[:, k]), atol=1e-5)


def test_sampler_rejects_bad_settings():
    m = tiny()
    with pytest.raises(ValueError, match="fps"):
        sample_motion(m, speechlike(1.0), 500.0)
    with pytest.raises(ValueError, match="context"):
        sample_motion(m, speechlike(1.0), 25.0, SampleSettings(window=16, context=16))


def test_pose_smoothing_touches_only_body_rotations():
    from vlogger_core.motion.params import MOTION_JOINTS
    from vlogger_core.motion.sampling import smooth_pose
    x = torch.zeros(20, 52 + 47 * 6)
    x[1::2] = 1.0                                   # alternate every frame: worst-case jitter
    y = smooth_pose(x, 52, MOTION_JOINTS, 2)
    head = 52 + 6 * MOTION_JOINTS.index("head")
    jaw = 52 + 6 * MOTION_JOINTS.index("jaw")
    assert torch.equal(y[:, :52], x[:, :52]) and torch.equal(y[:, jaw:jaw + 6], x[:, jaw:jaw + 6])
    assert y[2:-2, head].diff().abs().max() < 0.01  # the alternation is filtered out
    assert torch.allclose(y[2:-2, head], torch.full((16,), 0.5), atol=1e-6)


# ----------------------------------------------------------------------------- training (trainer core)
@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Two 2-second clip folders (speech-like audio + a moving motion), the corpus layout."""
    import soundfile as sf
    root = tmp_path_factory.mktemp("corpus")
    g = torch.Generator().manual_seed(0)
    for k in range(2):
        folder = root / f"clip_{k:05d}"
        folder.mkdir()
        sf.write(str(folder / "audio.wav"), speechlike(2.0, seed=k).numpy(), 16000, subtype="PCM_16")
        mo = Motion.neutral(50, 25.0)
        mo.expression[:] = torch.rand(50, mo.expression.shape[1], generator=g) * 0.5
        mo.rot6d[:] += torch.randn(mo.rot6d.shape, generator=g) * 0.05
        mo.save_npz(str(folder / "motion.npz"))
    return str(root)


def _train(corpus, out, **kw):
    from vlogger_core.training.motion import TrainConfig, train
    cfg = dict(steps=8, batch_size=2, lr=1e-3, warmup=2, log_every=1, ckpt_every=4, min_frames=16)
    mc = MotionModelConfig(d_model=32, n_heads=2, n_layers=1, max_train_frames=32)   # dropout 0.1: RNG restored
    run = {k: kw.pop(k) for k in ("log", "progress", "interrupt") if k in kw}
    return train(TrainConfig(data=corpus, out=str(out), **{**cfg, **kw}), mc, **{"log": lambda *a: None, **run})


def _losses(out):
    from vlogger_core.training.trainer import read_log
    return [(r["step"], r["loss"], r["l_diff"]) for r in read_log(out)]


def test_motion_training_resumes_to_the_same_losses(corpus, tmp_path):
    """A run interrupted after step 6 (checkpoint at 4) leaves no partial output; resumed, it logs
    the same losses and ends with the same weights as the uninterrupted run."""
    from trainer_checks import check_checkpoint, no_partials

    whole = _train(corpus, tmp_path / "whole")
    done = []

    def stop_after_6():
        if len(done) == 6:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        _train(corpus, tmp_path / "cut", progress=lambda d, t: done.append((d, t)), interrupt=stop_after_6)
    assert done == [(k, 8) for k in range(1, 7)]            # progress(done, total) every step
    no_partials(tmp_path / "cut")
    assert not (tmp_path / "cut" / "model.safetensors").exists()
    check_checkpoint(tmp_path / "cut" / "last", step=4)
    assert load_motion_model(str(tmp_path / "cut" / "last" / "model.safetensors")).training_info["step"] == "4"
    logs = []
    cut = _train(corpus, tmp_path / "cut", resume=True, log=logs.append)
    assert any("resuming at step 4" in m for m in logs), logs
    a, b = _losses(tmp_path / "whole"), _losses(tmp_path / "cut")
    assert [s for s, *_ in b] == list(range(1, 9))
    assert torch.allclose(torch.tensor([x[1:] for x in b]), torch.tensor([x[1:] for x in a]), rtol=1e-5), (a, b)
    ma, mb = load_motion_model(str(whole)), load_motion_model(str(cut))
    assert all(torch.allclose(v, mb.state_dict()[k], atol=1e-6) for k, v in ma.state_dict().items())
    assert json.loads(ma.training_info["final_losses"])["loss"] > 0


def test_motion_training_refuses_what_cannot_fit_and_bad_data(corpus, tmp_path):
    from vlogger_core.training.trainer import TrainingError
    with pytest.raises(TrainingError, match=r"batch_size 100000 \(a crop of up to 32 frames per sample\) "
                                            r"needs about") as e:
        _train(corpus, tmp_path / "big", batch_size=100_000, max_memory_gb=0.5)
    assert e.value.arg == "batch_size" and e.value.fix.startswith("lower batch_size to ")
    assert not (tmp_path / "big").exists()                   # refused before anything is written
    with pytest.raises(TrainingError, match="no clip folders") as e:
        _train(str(tmp_path), tmp_path / "none")
    assert e.value.arg == "data" and e.value.fix
