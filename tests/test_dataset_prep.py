"""Dataset preparation from footage (core), on the project's own rendered video whose true motion
is known: the fit recovers the motion; cuts split clips; silent, person-less, unreadable and
variable-frame-rate videos are handled as documented; the format round-trips; the motion
trainer reads it and its loss goes down."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from footage import alternating_times, write_mp4, write_vfr_mp4  # noqa: E402
from PIL import Image
from prep_recovery import recovery  # noqa: E402

from vlogger_core.body.model import load_body
from vlogger_core.body.reference import fit_reference
from vlogger_core.media import read_video
from vlogger_core.motion.params import Motion
from vlogger_core.render.controls import render_motion
from vlogger_core.training.dataset_format import (
    list_clips,
    read_clip,
    read_dataset,
    write_clip,
)
from vlogger_core.training.dataset_prep import (
    DatasetError,
    PrepSettings,
    decode,
    footage_from_arrays,
    prepare_dataset,
    shot_cuts,
)

REPO = Path(__file__).resolve().parent.parent
VIDEO = REPO / "examples" / "talking_astronaut.mp4"
TRUE_FIT = json.loads((REPO / "examples" / "talking_astronaut_fit.json").read_text())
quiet = dict(log=lambda *a: None)


@pytest.fixture(scope="module")
def body():
    return load_body()


@pytest.fixture(scope="module")
def prepared(body, tmp_path_factory):
    out = tmp_path_factory.mktemp("ds")
    summary = prepare_dataset([VIDEO], out, body, PrepSettings(clip_frames=96, frame_size=64), **quiet)
    return out, summary


def test_format_and_summary(prepared):
    out, summary = prepared
    d = read_dataset(out)
    assert d["format"] == "vlogger-dataset-v1" and d["kept"] == 1 and d["clips"] == ["clip_0000"]
    assert list_clips(out) == ["clip_0000"] and d["frame_size"] == [64, 64] and d["sample_rate"] == 16000
    assert d["created_by"].startswith("vlogger_core.training.dataset_prep v") and d["sources"] == [VIDEO.name]
    c = read_clip(out, "clip_0000")
    assert c["frames"].shape == (96, 64, 64, 3) and c["frames"].dtype == np.uint8
    assert c["dense"].shape == (96, 64, 64, 3) and c["semantic"].shape == (96, 64, 64)
    assert c["warped"].shape == (96, 64, 64, 3) and c["part_names"][0] == "background"
    ref = int(c["reference_index"])
    assert ref == 95 and np.array_equal(c["reference"], c["frames"][ref])
    assert c["global_orient"].shape == (96, 3) and c["transl"].shape == (96, 3)
    assert c["reference_pose"].shape == (55, 3, 3) and c["landmark_error_px"].shape == (96,)
    assert c["motion"].num_frames == 96 and len(c["audio"]) == 4 * 16000
    # the body (semantic != 0) covers the person: the frames' non-background pixels overlap it
    assert 0.15 < float((c["semantic"] > 0).mean()) < 0.8
    st = summary["clips"][0]
    print(f"landmark error {st['landmark_error_px']} px, jitter {st['jitter_px']} px, FOV {st['fov_diag_deg']}, "
          f"{summary['seconds']} s for 96 frames ({summary['seconds'] / 96:.3f} s/frame)")
    assert st["landmark_error_px"] < 3.0 and st["jitter_px"] < 1.5
    # the FOV is estimated per clip, as coarsely as for a photo (a scan over 20/32/50/80
    # degrees): within one scan step of the camera the video was rendered through (32 degrees;
    # measured 37 on its 256 px frames)
    ratio = st["fov_diag_deg"] / TRUE_FIT["fov_diag_deg"]
    assert 1 / 1.7 < ratio < 1.7, (st["fov_diag_deg"], TRUE_FIT["fov_diag_deg"])


def test_preparation_recovers_the_rendered_motion(body, prepared):
    """The video was rendered from examples/talking_astronaut_motion.npz: the recovered mouth
    opening (lip gap of the posed body), jaw, blinks and head angles follow the true ones."""
    out, _ = prepared
    m = recovery(body, read_clip(out, "clip_0000"))
    print({k: np.round(v, 3).tolist() for k, v in m.items()})
    # measured 0.74 / 0.63. (0.92 / 0.84 on the video the renderer made before the photo's own
    # teeth were kept: mediapipe reads that video's painted mouth more consistently, its inner-lip
    # gap vs the true jawOpen r = 0.79 there, 0.56 on this one; the fit itself is better now)
    assert m["lip_gap_r"] > 0.6, m
    assert m["jaw_open_r"] > 0.45, m
    assert m["blink_r"] > 0.8, m             # measured 0.89 (the extra eyelid points; 0 without them)
    assert max(m["head_mae_deg"]) < 2.5, m   # measured 0.9 / 1.4 / 0.5 against ranges of 5 / 10 / 5
    # the expression as a whole: the readable channels (jaw, blinks) are right, the ambiguous
    # ones (brows, pucker) drift, so the total is no better than an all-zero guess (0.036 vs 0.029)
    assert m["expression_mae"] < 2 * m["expression_mae_zero_guess"], m


def test_motion_trainer_reads_it_and_the_loss_goes_down(prepared, tmp_path):
    from vlogger_core.training.motion import TrainConfig, load_dataset, train
    out, _ = prepared
    items = load_dataset(str(out), 25.0)
    assert len(items) == 1
    final = train(TrainConfig(data=str(out), out=str(tmp_path), steps=100, batch_size=8, lr=2e-4, warmup=10,
                              log_every=20, ckpt_every=10**9, min_frames=16, seed=0,
                              init=str(REPO / "models" / "motion" / "vlogger_motion_default.safetensors")),
                  **quiet)
    rows = [json.loads(l) for l in (tmp_path / "loss_log.jsonl").read_text().splitlines()]
    print("fine-tune losses", [round(r["loss"], 4) for r in rows])
    assert final.exists() and rows[-1]["loss"] < 0.8 * rows[0]["loss"], [r["loss"] for r in rows]


_write = write_mp4


def test_a_cut_between_two_sources_splits_the_clips(body, tmp_path):
    """40 frames of the astronaut, then 40 frames of another shot (other colours, still a
    person): no clip spans the cut, both shots become clips of their own."""
    frames, fps, audio, rate = read_video(VIDEO)
    other = np.ascontiguousarray(frames[40:80, :, ::-1, ::-1])        # mirrored, BGR: another camera
    assert shot_cuts(np.concatenate([frames[:40], other]), 0.5) == [40]
    assert shot_cuts(frames, 0.5) == []
    cut = tmp_path / "cut.mp4"
    _write(cut, np.concatenate([frames[:40], other]), audio=np.zeros(16000 * 4, np.float32))
    s = prepare_dataset([cut], tmp_path / "c", body, PrepSettings(clip_frames=48, frame_size=32, iters=40), **quiet)
    assert s["notes"]["cut.mp4"]["shot_cuts"] == [40]
    assert [(c["start_frame"], c["frames"]) for c in s["clips"]] == [(0, 40), (40, 40)], s
    # a piece left too short by a cut is dropped with the reason
    short = tmp_path / "short.mp4"
    _write(short, np.concatenate([frames[:40], other[:6]]), audio=np.zeros(16000 * 2, np.float32))
    s = prepare_dataset([short], tmp_path / "d", body, PrepSettings(clip_frames=48, frame_size=32, iters=40), **quiet)
    assert s["kept"] == 1 and len(s["dropped"]) == 1 and "too short" in s["dropped"][0]["reason"]
    assert read_dataset(tmp_path / "d")["dropped"] == s["dropped"]


def test_silent_unreadable_and_personless_videos(body, tmp_path):
    frames, *_ = read_video(VIDEO)
    silent = tmp_path / "silent.mp4"
    _write(silent, frames[:30])
    with pytest.raises(DatasetError, match="silent.mp4 has no audio track"):
        prepare_dataset([silent], tmp_path / "a", body, PrepSettings(clip_frames=24, frame_size=32))
    # allowed for video training: the clip has frames + controls, no audio.wav
    s = prepare_dataset([silent], tmp_path / "a", body, PrepSettings(clip_frames=24, frame_size=32, iters=30,
                                                                     allow_silent=True), **quiet)
    assert s["kept"] == 1 and s["notes"]["silent.mp4"]["silent"]
    assert not (tmp_path / "a" / "clips" / "clip_0000" / "audio.wav").exists()
    noise = tmp_path / "noise.mp4"
    rng = np.random.default_rng(0)
    _write(noise, rng.integers(0, 255, (24, 128, 128, 3), dtype=np.uint8), audio=np.zeros(16000, np.float32))
    with pytest.raises(DatasetError, match="no person found in noise.mp4"):
        prepare_dataset([noise], tmp_path / "b", body, PrepSettings(clip_frames=24, frame_size=32))
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 100)
    with pytest.raises(DatasetError, match="cannot decode junk.mp4"):
        prepare_dataset([junk], tmp_path / "c", body, PrepSettings(clip_frames=24, frame_size=32))
    with pytest.raises(DatasetError, match="no such file"):
        prepare_dataset([tmp_path / "missing.mp4"], tmp_path / "c", body)
    assert not (tmp_path / "b" / "dataset.json").exists() and not (tmp_path / "c").exists()


def _write_vfr(path, n=40):
    """Frame k shows grey level 5k; the timestamp steps alternate 1/30 and 1/15 s."""
    times = alternating_times(n)
    write_vfr_mp4(path, np.stack([np.full((64, 64, 3), 5 * k, np.uint8) for k in range(n)]), times)
    return times


def test_variable_frame_rate_is_resampled_to_constant_fps(tmp_path):
    """Documented behaviour: VFR footage is resampled (each output time shows the source frame
    on screen at that time) and the notes say so."""
    times = _write_vfr(tmp_path / "vfr.mp4")
    fo = decode(tmp_path / "vfr.mp4", 24.0)
    assert fo.notes["variable_frame_rate"] and fo.notes["resampled_to_fps"] == 24.0
    assert len(fo.frames) == round((times[-1] + np.diff(times).mean()) * 24)
    shown = [5 * (np.searchsorted(times, k / 24 + 1e-6, side="right") - 1) for k in range(len(fo.frames))]
    assert np.abs(fo.frames[:, 32, 32].astype(int).mean(-1) - shown).max() <= 2
    # constant-rate footage at the target rate is passed through untouched
    assert "resampled_to_fps" not in decode(VIDEO, 24.0).notes
    # arrays at another rate are resampled the same way
    fa = footage_from_arrays("x", np.zeros((30, 8, 8, 3), np.uint8), np.zeros(48000), 48000, 30.0, 24.0)
    assert len(fa.frames) == 24 and len(fa.audio) == 16000 and fa.notes["resampled_to_fps"] == 24.0


def test_format_round_trip(body, tmp_path):
    """write_clip / read_clip keep every array bit for bit; nothing half-written is left."""
    photo = torch.from_numpy(np.array(Image.open(REPO / "examples" / "astronaut.png").convert("RGB"))).float() / 255
    fit = fit_reference(photo, body, "opencv")
    m = Motion.neutral(6, 24.0, body.expression_set)
    m.expression[:, 3] = torch.linspace(0, 0.5, 6)
    ctl = render_motion(body, fit, m, 32, 32)
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 255, (6, 32, 32, 3), dtype=np.uint8)
    wave = rng.uniform(-0.5, 0.5, 4000).astype(np.float32)
    arrays = {"betas": np.arange(10, dtype=np.float32), "reference_pose": np.eye(3, dtype=np.float32)[None].repeat(55, 0),
              "global_orient": np.zeros((6, 3), np.float32), "transl": np.ones((6, 3), np.float32),
              "fov_diag_deg": np.float32(45), "width": np.int32(256), "height": np.int32(256),
              "landmark_error_px": np.ones(6, np.float32), "body": np.array(body.name)}
    write_clip(tmp_path, "clip_0000", frames=frames, wave=wave, motion=m, fit=arrays, controls=ctl, reference_index=5)
    c = read_clip(tmp_path, "clip_0000")
    assert np.array_equal(c["frames"], frames) and np.array_equal(c["reference"], frames[5])
    assert np.abs(c["audio"] - wave).max() < 1e-4                       # PCM16
    assert all(np.array_equal(c[k], v) for k, v in arrays.items())
    assert torch.allclose(c["motion"].expression, m.expression)
    assert np.array_equal(c["semantic"], ctl.semantic.numpy()) and int(c["reference_index"]) == 5
    assert sorted(p.name for p in (tmp_path / "clips").iterdir()) == ["clip_0000"]
    with pytest.raises(FileNotFoundError, match="no dataset.json"):
        read_dataset(tmp_path)


def test_without_a_landmark_detector_the_message_says_how_to_install(tmp_path):
    """Without mediapipe the preparation uses the shipped landmark runtime; a python where
    neither it (ai-edge-litert) nor mediapipe can be imported is told what to install."""
    code = ("import sys; sys.modules['mediapipe'] = None\n"
            "from vlogger_core.training.dataset_prep import landmark_backend\n"
            "print('BACKEND', landmark_backend())\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert "BACKEND landmarks" in r.stdout, r
    code = ("import sys; sys.modules['mediapipe'] = None; sys.modules['ai_edge_litert'] = None\n"
            "from vlogger_core.training.dataset_prep import prepare_dataset, DatasetError\n"
            "from vlogger_core.body.model import load_body\n"
            "try:\n    prepare_dataset([sys.argv[1]], sys.argv[2], load_body())\n"
            "except DatasetError as e:\n    print('ERR', e, '| FIX', e.fix)\n")
    r = subprocess.run([sys.executable, "-c", code, str(VIDEO), str(tmp_path / "x")], cwd=REPO,
                       capture_output=True, text=True, timeout=300)
    assert "ERR dataset preparation needs face, pose and hand landmarks" in r.stdout, r
    assert "ai-edge-litert cannot be imported" in r.stdout and "FIX pip install ai-edge-litert" in r.stdout, r
    assert not (tmp_path / "x").exists()


def test_long_footage_is_refused_before_decoding_and_frames_are_shrunk_as_decoded():
    """Ten hours at 256 px cannot be held in memory: refused with how to split it. A decoded
    file comes back as centre squares of the requested size (HD frames are never all held)."""
    import re

    from vlogger_core.media import MediaError, check_memory
    with pytest.raises(MediaError, match=r"lasts 600.0 min: its frames at 256 px need about \d+\.\d GB") as e:
        check_memory("long.mp4", 36000, 24.0, 256)
    assert e.value.arg == "path" and re.match(r"cut it into shorter videos \(e.g. \d+ min each\)", e.value.fix)
    check_memory("short.mp4", 4.0, 24.0, 256)             # 4 s: fine
    fo = decode(VIDEO, 24.0, 96)
    assert fo.frames.shape == (96, 96, 96, 3) and fo.frames.dtype == np.uint8


def test_no_usable_clip_writes_nothing_and_keeps_the_old_dataset(body, prepared, tmp_path):
    """require_hands on footage without hands drops every clip: an error says why, and a
    dataset already under that name is left as it was (not replaced by an empty one)."""
    import shutil
    out, _ = prepared
    copy = tmp_path / "ds"
    shutil.copytree(out, copy)
    before = sorted(p.name for p in (copy / "clips").iterdir())
    with pytest.raises(DatasetError, match=r"no usable clip \(hands missing in 100% of the frames\)"):
        prepare_dataset([VIDEO], copy, body, PrepSettings(clip_frames=48, frame_size=32, require_hands=True), **quiet)
    assert sorted(p.name for p in (copy / "clips").iterdir()) == before and read_dataset(copy)["kept"] == 1
    assert not (tmp_path / ".ds.partial").exists()
