"""Stage-2 paths: SD 1.x single-file base (offline), temporal outpainting, SR cascade with tiling.
Tiny random models only: these check the machinery, never output quality."""
from __future__ import annotations

import socket

import pytest
import torch
from make_tiny_video_model import (
    randomize_trained_parts,
    tiny_pixel_spec,
    tiny_sd_spec,
    tiny_sr_spec,
    write_tiny_sd_checkpoint,
)
from safetensors.torch import save_file

from vlogger_core.diffusion.model import build_video_model, read_config
from vlogger_core.diffusion.outpainting import outpaint, window_starts
from vlogger_core.diffusion.sampling import sample_clip
from vlogger_core.diffusion.sd_checkpoint import (
    UNET_PREFIX,
    load_sd1_checkpoint,
    read_sd_checkpoint,
)
from vlogger_core.diffusion.super_resolution import (
    SuperResolutionModel,
    super_resolve,
    super_resolve_stream,
    tiled_eps,
)
from vlogger_core.diffusion.weights import load_model, save_model

N_C = 4


@pytest.fixture()
def no_network(monkeypatch):
    """HF offline AND any socket connection fails: loading must not even try the hub."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def refuse(*a, **k):
        raise AssertionError("network access attempted")
    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture(scope="module")
def sd_ckpt(tmp_path_factory):
    spec = tiny_sd_spec(num_parts=N_C)
    return spec, write_tiny_sd_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny-random-sd1.safetensors", spec)


def test_sd15_configs_are_the_real_architecture():
    from diffusers import AutoencoderKL, UNet2DConditionModel
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(read_config("sd15_unet"))
        vae = AutoencoderKL.from_config(read_config("sd15_vae"))
    # published parameter counts of the SD v1 UNet and KL-f8 VAE
    assert sum(p.numel() for p in unet.parameters()) == 859_520_964
    assert sum(p.numel() for p in vae.parameters()) == 83_653_863


def test_sd1_single_file_loads_offline_and_samples(sd_ckpt, no_network, tmp_path):
    spec, path = sd_ckpt
    unet, vae = load_sd1_checkpoint(path, spec.unet_config, spec.vae_config)
    tensors, _ = read_sd_checkpoint(path)
    # a converted weight is the file's tensor (first conv of the UNet)
    assert torch.equal(unet.conv_in.weight, tensors[UNET_PREFIX + "input_blocks.0.0.weight"])
    model = build_video_model(spec, unet, vae).eval()
    randomize_trained_parts(model, std=0.05)
    save_model(model, tmp_path / "sd", tiny_random=True)
    with pytest.raises(ValueError, match="SD 1.x checkpoint"):
        load_model(tmp_path / "sd")
    again = load_model(tmp_path / "sd", checkpoint=path)
    ctl, ref = torch.rand(4, 3 + N_C + 3, 64, 64), torch.rand(3, 64, 64)
    a = sample_clip(model, ref, ctl, steps=2, seed=3, guidance=2.0)
    b = sample_clip(again, ref, ctl, steps=2, seed=3, guidance=2.0)
    assert a.shape == (4, 3, 64, 64)          # decoded by the checkpoint's VAE at 8x the latent size
    assert torch.equal(a, b)                  # reloaded folder + checkpoint = the same model


def _write(path, tensors):
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
    return path


def test_non_sd1_checkpoints_are_rejected_clearly(sd_ckpt, tmp_path, no_network):
    spec, path = sd_ckpt
    with pytest.raises(ValueError, match="not a single-file SD 1.x"):
        load_sd1_checkpoint(_write(tmp_path / "lora.safetensors", {"lora_unet_x.alpha": torch.ones(1)}),
                            spec.unet_config, spec.vae_config)
    tensors, _ = read_sd_checkpoint(path)
    sd2 = dict(tensors)
    sd2[UNET_PREFIX + "input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight"] = torch.zeros(32, 1024)
    with pytest.raises(ValueError, match="Stable Diffusion 2"):
        load_sd1_checkpoint(_write(tmp_path / "sd2.safetensors", sd2), spec.unet_config, spec.vae_config)
    xl = dict(tensors)
    xl["conditioner.embedders.1.model.transformer.resblocks.9.mlp.c_proj.bias"] = torch.zeros(4)
    with pytest.raises(ValueError, match="SDXL"):
        load_sd1_checkpoint(_write(tmp_path / "xl.safetensors", xl), spec.unet_config, spec.vae_config)
    with pytest.raises(ValueError, match="does not match the SD 1.x architecture"):
        load_sd1_checkpoint(path, read_config("sd15_unet"), spec.vae_config)  # tiny file vs real SD config
    (tmp_path / "old.ckpt").write_bytes(b"not read")
    with pytest.raises(ValueError, match="pickled"):
        load_sd1_checkpoint(tmp_path / "old.ckpt", spec.unet_config, spec.vae_config)


@pytest.fixture(scope="module")
def video():
    torch.manual_seed(0)
    m = build_video_model(tiny_pixel_spec(num_parts=N_C, num_frames=4, size=32)).eval()
    randomize_trained_parts(m, std=0.05)
    return m


def test_window_plan():
    assert window_starts(11, 4, 2) == [0, 2, 4, 6, 7]
    assert window_starts(4, 4, 1) == [0]
    for bad in (0, 4, 5):
        with pytest.raises(ValueError, match="overlap"):
            window_starts(20, 4, bad)


def test_outpainting_reproduces_the_conditioned_frames(video):
    ref = torch.rand(3, 32, 32)
    ctl = torch.rand(11, 3 + N_C + 3, 32, 32)
    calls = []
    windows = list(outpaint(video, ref, ctl, overlap=2, steps=3, seed=5, progress=lambda d, t: calls.append((d, t))))
    assert [w.start for w in windows] == [0, 2, 4, 6, 7]
    assert sum(w.frames.shape[0] for w in windows) == 11
    assert [w.new_start for w in windows] == [0, 4, 6, 8, 10]
    for prev, cur in zip(windows, windows[1:]):
        k = prev.start + 4 - cur.start          # frames of `cur` that `prev` already made
        assert torch.equal(cur.samples[:k], prev.samples[cur.start - prev.start:][:k])
        assert not torch.allclose(cur.samples[k:], prev.samples[-1:].expand_as(cur.samples[k:]))
    assert calls[-1] == (15, 15)
    again = torch.cat([w.frames for w in outpaint(video, ref, ctl, overlap=2, steps=3, seed=5)])
    assert torch.equal(again, torch.cat([w.frames for w in windows]))


def test_outpainting_bad_overlap_and_short_video(video):
    ref = torch.rand(3, 32, 32)
    ctl = torch.rand(3, 3 + N_C + 3, 32, 32)
    for bad in (0, 4):  # N' = N (no link between windows) and N' = 0
        with pytest.raises(ValueError, match="overlap"):
            next(outpaint(video, ref, ctl, overlap=bad, steps=1))
    (only,) = list(outpaint(video, ref, ctl, overlap=2, steps=2))   # shorter than N: one clip
    assert only.frames.shape == (3, 3, 32, 32)


@pytest.fixture(scope="module")
def sr():
    torch.manual_seed(0)
    m = SuperResolutionModel(tiny_sr_spec(in_size=32, num_frames=3)).eval()
    randomize_trained_parts(m, std=0.05)
    return m


def test_super_resolution_shapes_and_determinism(sr, tmp_path):
    frames = torch.rand(5, 3, 32, 32)
    a = super_resolve(sr, frames, steps=2, seed=1)
    assert a.shape == (5, 3, 64, 64) and 0 <= a.min() and a.max() <= 1
    assert torch.equal(a, super_resolve(sr, frames, steps=2, seed=1))
    save_model(sr, tmp_path / "sr", tiny_random=True)
    again = load_model(tmp_path / "sr")
    assert torch.equal(a, super_resolve(again, frames, steps=2, seed=1))
    with pytest.raises(ValueError, match="32x32"):
        super_resolve(sr, torch.rand(2, 3, 48, 48), steps=1)
    with pytest.raises(ValueError, match="multiple"):
        super_resolve(sr, frames, steps=1, tile=31, overlap=8)


def test_tiled_prediction_matches_untiled(sr):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 3, 64, 64, generator=g)
    low = torch.rand(3, 3, 64, 64, generator=g) * 2 - 1
    with torch.no_grad():
        full = sr(x, 500, low, 3)
        rel = {}
        for tile, ov in ((32, 16), (32, 0), (48, 16)):
            t = tiled_eps(sr, x, 500, low, 3, tile, ov)
            rel[(tile, ov)] = ((t - full).norm() / full.norm()).item()
    # overlap blending brings tiles close to the whole-frame result; bigger tiles closer still
    assert rel[(32, 16)] < 0.2
    assert rel[(48, 16)] < rel[(32, 16)] < rel[(32, 0)]
    out_tiled = super_resolve(sr, torch.rand(3, 3, 32, 32), steps=2, seed=0, tile=32, overlap=16)
    assert out_tiled.shape == (3, 3, 64, 64)


def test_sr_windows_join_and_stream_like_one_shot(sr):
    frames = torch.rand(8, 3, 32, 32)
    whole = super_resolve(sr, frames, steps=2, seed=4, chunk_overlap=1)
    # streamed in uneven batches: same frames, same order, bit for bit
    parts = list(super_resolve_stream(sr, [frames[:2], frames[2:7], frames[7:]], steps=2, seed=4, chunk_overlap=1))
    assert torch.equal(torch.cat(parts), whole) and whole.shape == (8, 3, 64, 64)
    assert [p.shape[0] for p in parts] == [3, 2, 2, 1]   # N=3 then N-1 new frames per window
    # a window's known frames come out exactly as given (held, not regenerated)
    from vlogger_core.diffusion.super_resolution import TilePlan, _sr_window
    known = whole[2:3] * 2 - 1
    x0 = _sr_window(sr, frames[2:5], torch.Generator().manual_seed(0), "ddim", 2, TilePlan(sr, 0, 0), known,
                    None, None, 0, 2)
    assert torch.equal(x0[:1], known) and not torch.equal(x0[1:2], known)
    with pytest.raises(ValueError, match="chunk_overlap"):
        super_resolve(sr, frames, steps=1, chunk_overlap=3)
    independent = super_resolve(sr, frames, steps=2, seed=4, chunk_overlap=0)
    assert not torch.equal(independent[3:], whole[3:])


def test_streamed_cascade_equals_stage_by_stage(video, sr):
    from vlogger_core.diffusion.stream import diffusion_frames
    ref = torch.rand(3, 32, 32)
    ctl = torch.rand(7, 3 + N_C + 3, 32, 32)
    seen = []
    streamed = torch.cat(list(diffusion_frames(video, ref, ctl, overlap=2, steps=2, seed=9, sr_stages=[sr],
                                               sr_steps=2, sr_window_overlap=1,
                                               progress=lambda d, t: seen.append((d, t)))))
    low = torch.cat([w.frames for w in outpaint(video, ref, ctl, overlap=2, steps=2, seed=9)])
    staged = super_resolve(sr, low, steps=2, seed=10, chunk_overlap=1)
    assert streamed.shape == (7, 3, 64, 64)
    assert torch.equal(streamed, staged)
    assert seen[-1][0] == seen[-1][1] and all(a[0] <= b[0] for a, b in zip(seen, seen[1:]))
    with pytest.raises(ValueError, match="SR stage 1 takes"):
        next(diffusion_frames(video, torch.rand(3, 32, 32), ctl, overlap=2, sr_stages=[
            SuperResolutionModel(tiny_sr_spec(in_size=64, num_frames=3))]))


def test_a_bad_sr_chain_is_refused_naming_the_stage(video, sr):
    """The chain is checked before any work, and an error names the slot at fault (unconnected
    slots keep the others' positions), so a node can name its own input."""
    from vlogger_core.diffusion.stream import diffusion_frames, sr_chain
    from vlogger_core.errors import VloggerError
    ctl = torch.rand(5, 3 + N_C + 3, 32, 32)
    assert sr_chain(32, [sr, None]) == ([sr], 64) and sr_chain(32, [None, sr]) == ([sr], 64)
    assert sr_chain(32, []) == ([], 32)
    bad = [(([sr, sr], {}), "sr_stages[1]", "SR stage 2 takes 32x32 frames but receives 64x64"),
           (([None, video], {}), "sr_stages[1]", "a video model"),
           (([video, sr], {}), "sr_stages[0]", "a video model"),
           (([sr], {"window_overlap": 3}), "sr_window_overlap", "sr_window_overlap"),
           (([sr], {"tile": 31, "tile_overlap": 8}), "sr_tile", "multiple")]
    for (stages, kw), arg, text in bad:
        with pytest.raises(VloggerError, match=text) as e:
            sr_chain(32, stages, **kw)
        assert e.value.arg == arg and e.value.fix
        with pytest.raises(VloggerError) as e:       # refused when called, before a window is made
            diffusion_frames(video, torch.rand(3, 32, 32), ctl, overlap=2, sr_stages=stages,
                             **{f"sr_{k}": v for k, v in kw.items()})
        assert e.value.arg == arg
    with pytest.raises(VloggerError) as e:
        diffusion_frames(video, torch.rand(3, 32, 32), ctl, overlap=2, sr_stages=[sr], sr_steps=0)
    assert e.value.arg == "sr_steps"
    with pytest.raises(VloggerError) as e:
        super_resolve(video, torch.rand(2, 3, 32, 32), steps=1)
    assert e.value.arg == "model"


def test_outpaint_video_is_the_windows_in_one_tensor(video):
    from vlogger_core.diffusion.outpainting import outpaint_video
    ref, ctl = torch.rand(3, 32, 32), torch.rand(7, 3 + N_C + 3, 32, 32)
    seen = []
    whole = outpaint_video(video, ref, ctl, overlap=2, steps=2, seed=3, progress=lambda d, t: seen.append((d, t)))
    windows = torch.cat([w.frames for w in outpaint(video, ref, ctl, overlap=2, steps=2, seed=3)])
    assert whole.shape == (7, 3, 32, 32) and torch.equal(whole, windows)
    assert whole.permute(0, 2, 3, 1).is_contiguous()       # ComfyUI's IMAGE view costs no copy
    assert seen[-1] == (2 * len(window_starts(7, 4, 2)),) * 2


def _controls(frames, size, num_parts, seed=0):
    from vlogger_core.render.controls import Controls
    g = torch.Generator().manual_seed(seed)
    names = ["background"] + [f"part{i}" for i in range(num_parts)]
    return Controls(dense=torch.rand(frames, size, size, 3, generator=g),
                    semantic=torch.randint(0, num_parts + 1, (frames, size, size), generator=g, dtype=torch.uint8),
                    warped=torch.rand(frames, size, size, 3, generator=g),
                    alpha=torch.ones(frames, size, size), warped_valid=torch.ones(frames, size, size, dtype=torch.bool),
                    depth=torch.ones(frames, size, size), part_names=names)


def test_real_controls_dataclass_is_taken_and_sliced_per_window(video):
    from vlogger_core.body.parts import PART_NAMES
    from vlogger_core.diffusion.model import DEFAULT_NUM_PARTS
    assert DEFAULT_NUM_PARTS == len(PART_NAMES) - 1      # N_c follows the shipped part list
    ctl = _controls(9, 32, N_C)
    ref = torch.rand(3, 32, 32)
    as_tensor = ctl.to_channels()
    assert as_tensor.shape == (9, 3 + N_C + 3, 32, 32)
    clip = sample_clip(video, ref, ctl.select(0, 4), steps=2, seed=1)
    assert torch.equal(clip, sample_clip(video, ref, as_tensor[:4], steps=2, seed=1))
    lazy = torch.cat([w.frames for w in outpaint(video, ref, ctl, overlap=2, steps=2, seed=2)])
    eager = torch.cat([w.frames for w in outpaint(video, ref, as_tensor, overlap=2, steps=2, seed=2)])
    assert lazy.shape == (9, 3, 32, 32) and torch.equal(lazy, eager)
    with pytest.raises(ValueError, match="channels"):
        sample_clip(video, ref, _controls(4, 32, N_C + 1), steps=1)


class _MemoryLimited(torch.nn.Module):
    """An SR model on a device that cannot hold frames wider than `limit` pixels: the forward
    raises torch's real out-of-memory error type above it (an OOM cannot be provoked safely on
    this machine, so it is injected at the one place it would occur)."""

    def __init__(self, model, limit: int):
        super().__init__()
        self.inner, self.limit, self.calls = model, limit, []
        self.spec, self.multiple = model.spec, model.multiple

    def forward(self, x, t, low_up, n):
        self.calls.append(x.shape[-1])
        if x.shape[-1] > self.limit:
            raise torch.OutOfMemoryError(f"simulated: {x.shape[-1]} px > {self.limit}")
        return self.inner(x, t, low_up, n)


def test_sr_halves_the_tile_on_out_of_memory_and_keeps_it(sr):
    from vlogger_core.diffusion.super_resolution import TilePlan
    frames = torch.rand(5, 3, 32, 32)
    limited = _MemoryLimited(sr, limit=32)
    messages = []
    plan = TilePlan(limited, 0, 32, messages.append)
    out = super_resolve(limited, frames, steps=2, seed=3, chunk_overlap=1, plan=plan)
    # untiled 64 px failed once, then 32-px tiles (overlap 32 -> 8) for the rest of the run
    assert plan.tile == 32 and plan.overlap == 8 and plan.halvings == 1
    assert limited.calls.count(64) == 1 and messages and "32-pixel tiles" in messages[0]
    assert torch.equal(out, super_resolve(sr, frames, steps=2, seed=3, chunk_overlap=1, tile=32, overlap=8))
    # nothing fits: a clear error, not a loop
    with pytest.raises(MemoryError, match="even with"):
        super_resolve(_MemoryLimited(sr, limit=4), frames, steps=1, seed=0)
