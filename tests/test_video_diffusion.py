"""Stage-2 video model: zero-init properties, temporal layers, shapes, determinism, weights folders.
Tiny random models only: these check the machinery, never output quality."""
from __future__ import annotations

import json

import pytest
import torch
from diffusers import UNet2DConditionModel
from make_tiny_video_model import randomize_trained_parts, tiny_pixel_spec, tiny_unet

from vlogger_core.diffusion.model import (
    VideoSpec,
    build_video_model,
    control_channels,
    read_config,
)
from vlogger_core.diffusion.sampling import build_condition, sample_clip
from vlogger_core.diffusion.temporal import (
    TemporalConv,
    add_temporal_layers,
    set_num_frames,
    unwrapped_state_dict,
)
from vlogger_core.diffusion.weights import load_model, save_model

N_C = 5


@pytest.fixture(scope="module")
def spec():
    return tiny_pixel_spec(num_parts=N_C, num_frames=4, size=32)


@pytest.fixture(scope="module")
def model(spec):
    torch.manual_seed(0)
    return build_video_model(spec).eval()


def _inputs(spec, frames=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(frames, 3, spec.sample_size, spec.sample_size, generator=g)
    cond = torch.rand(frames, spec.cond_channels, spec.image_size, spec.image_size, generator=g)
    return x, cond


def test_channel_layout(spec):
    assert control_channels(N_C) == 3 + N_C + 3
    assert spec.cond_channels == 3 + N_C + 3 + 3


def test_fresh_control_branch_leaves_base_unchanged(model, spec):
    x, cond = _inputs(spec)
    plain = UNet2DConditionModel.from_config(read_config(spec.unet_config))
    plain.load_state_dict(unwrapped_state_dict(model.base))
    ctx = model.context.expand(x.shape[0], -1, -1)
    with torch.no_grad():
        full = model(x, 10, cond, num_frames=4)
        alone = plain(x, 10, encoder_hidden_states=ctx).sample
    assert full.shape == x.shape
    assert torch.equal(full, alone)


def test_base_is_frozen_and_trainable_parts_are_not(model):
    assert all(not p.requires_grad for n, p in model.base.named_parameters() if ".temporal." not in n)
    trainable = {id(p) for p in model.trainable_parameters()}
    assert all(id(p) in trainable for p in model.control.parameters())
    assert all(id(p) in trainable for p in model.temporal.parameters())
    assert not any(id(p) in trainable for n, p in model.base.named_parameters() if ".temporal." not in n)


def test_control_branch_acts_once_its_joins_are_trained(spec):
    torch.manual_seed(0)
    m = build_video_model(spec).eval()
    x, cond = _inputs(spec)
    with torch.no_grad():
        before = m(x, 10, cond, num_frames=4)
        randomize_trained_parts(m, std=0.05)
        after = m(x, 10, cond, num_frames=4)
        other = m(x, 10, torch.zeros_like(cond), num_frames=4)
    assert (after - before).abs().max() > 1e-4
    assert (after - other).abs().max() > 1e-4  # the controls themselves reach the output


def test_temporal_layers_do_not_change_a_single_frame_model():
    torch.manual_seed(0)
    cfg = tiny_unet()
    unet = UNet2DConditionModel.from_config(cfg).eval()
    x = torch.randn(3, 3, 32, 32)
    ctx = torch.randn(3, 1, 32)
    with torch.no_grad():
        before = unet(x, 5, encoder_hidden_states=ctx).sample
        layers = add_temporal_layers(unet)
        assert len(layers) == sum(len(b.resnets) for b in unet.down_blocks)
        for n in (1, 3):
            set_num_frames(unet, n)
            assert torch.equal(unet(x, 5, encoder_hidden_states=ctx).sample, before)


def test_temporal_conv_mixes_only_neighbouring_frames_of_the_same_clip():
    conv = TemporalConv(4, 3)
    with torch.no_grad():
        conv.proj.weight.normal_()
        conv.bias.normal_()
    conv.num_frames = 4
    x = torch.zeros(8, 4, 2, 2)            # two clips of 4 frames
    x[1] = 1.0                             # frame 1 of clip 0
    d = (conv(x) - conv(torch.zeros_like(x))).abs().flatten(1).amax(1)
    assert d[0] > 0 and d[2] > 0 and d[1] > 0     # neighbours and itself
    assert d[3] == 0 and torch.all(d[4:] == 0)   # not 2 frames away, not the other clip
    ref = torch.nn.functional.conv1d(
        x.view(2, 4, 4, 4).permute(0, 3, 2, 1).reshape(8, 4, 4),
        conv.proj.weight.view(3, 4, 4).permute(1, 2, 0), conv.bias, padding=1)
    ours = (conv(x) - x).view(2, 4, 4, 4).permute(0, 3, 2, 1).reshape(8, 4, 4)
    assert torch.allclose(ours, ref, atol=1e-5)   # exactly a 1D conv over frames (zero padding)


def test_frames_processed_as_batch_of_clips(model, spec):
    x, cond = _inputs(spec, frames=8)       # B=2 clips of N=4
    with torch.no_grad():
        both = model(x, 10, cond, num_frames=4)
        first = model(x[:4], 10, cond[:4], num_frames=4)
    assert both.shape == (8, 3, 32, 32)
    assert torch.allclose(both[:4], first, atol=1e-5)


def test_clip_is_deterministic_per_seed(spec):
    torch.manual_seed(0)
    m = build_video_model(spec).eval()
    randomize_trained_parts(m, std=0.05)
    ref = torch.rand(3, 32, 32)
    ctl = torch.rand(4, 3 + N_C + 3, 32, 32)
    a = sample_clip(m, ref, ctl, steps=3, seed=7, guidance=2.0)
    b = sample_clip(m, ref, ctl, steps=3, seed=7, guidance=2.0)
    c = sample_clip(m, ref, ctl, steps=3, seed=8, guidance=2.0)
    d = sample_clip(m, ref, ctl, steps=3, seed=7, scheduler="dpmpp_2m")
    assert a.shape == (4, 3, 32, 32) and 0 <= a.min() and a.max() <= 1
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert d.shape == a.shape


def test_bad_inputs_raise_clear_errors(model, spec):
    ref = torch.rand(3, 32, 32)
    with pytest.raises(ValueError, match="channels"):
        sample_clip(model, ref, torch.rand(4, 3 + N_C + 4, 32, 32), steps=1)
    with pytest.raises(ValueError, match="frames"):
        sample_clip(model, ref, torch.rand(5, 3 + N_C + 3, 32, 32), steps=1)
    with pytest.raises(ValueError, match="32x32"):
        sample_clip(model, ref, torch.rand(4, 3 + N_C + 3, 48, 48), steps=1)
    with pytest.raises(ValueError, match="reference"):
        build_condition(model, torch.rand(4, 3 + N_C + 3, 32, 32), torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError, match="scheduler"):
        sample_clip(model, ref, torch.rand(4, 3 + N_C + 3, 32, 32), steps=1, scheduler="nope")
    with pytest.raises(ValueError, match="divisible"):
        build_video_model(VideoSpec(unet_config=tiny_unet(), num_parts=N_C, image_size=33,
                                    cond_embedding_channels=(8,)))


def test_errors_name_the_argument_at_fault(model, spec):
    from vlogger_core.diffusion.sampling import square_reference
    from vlogger_core.errors import VloggerError
    ref = torch.rand(3, 32, 32)
    cases = [(lambda: sample_clip(model, ref, torch.rand(4, 3 + N_C + 4, 32, 32), steps=1), "controls"),
             (lambda: sample_clip(model, ref, torch.rand(5, 3 + N_C + 3, 32, 32), steps=1), "controls"),
             (lambda: sample_clip(model, torch.rand(3, 48, 48), torch.rand(4, 3 + N_C + 3, 32, 32), steps=1),
              "reference"),
             (lambda: sample_clip(model, ref, torch.rand(4, 3 + N_C + 3, 32, 32), steps=0), "steps"),
             (lambda: sample_clip(model, ref, torch.rand(4, 3 + N_C + 3, 32, 32), scheduler="nope"), "scheduler"),
             (lambda: square_reference(torch.rand(32, 32), 32), "reference"),
             (lambda: build_video_model(VideoSpec(unet_config=tiny_unet(), num_parts=0)), "spec")]
    for call, arg in cases:
        with pytest.raises(VloggerError) as e:
            call()
        assert e.value.arg == arg and e.value.fix, (arg, e.value)


def test_square_reference_is_the_centre_square_at_the_model_size():
    from vlogger_core.diffusion.sampling import square_reference
    photo = torch.zeros(40, 60, 3)
    photo[:, 10:50] = 1.0                       # the centre 40x40 square is white, the sides black
    ref = square_reference(photo, 20)
    assert ref.shape == (1, 3, 20, 20) and torch.allclose(ref, torch.ones_like(ref))


def test_schedulers_follow_the_model_config():
    """diffusers' from_config takes the config's schedule (the old kwargs filter through
    __init__.__code__.co_varnames saw only the config decorator's wrapper and dropped every key)."""
    from vlogger_core.diffusion.sampling import SCHEDULERS, make_scheduler
    for name in SCHEDULERS:
        pixel, sd = make_scheduler("pixel_scheduler", name), make_scheduler("sd15_scheduler", name)
        assert pixel.config.beta_schedule == "squaredcos_cap_v2" and pixel.config.prediction_type == "epsilon"
        assert sd.config.beta_schedule == "scaled_linear" and sd.config.beta_end == 0.012
        assert sd.config.steps_offset == 1


def test_trained_parts_round_trip_and_mismatch_report(tmp_path, spec):
    torch.manual_seed(0)
    m = build_video_model(spec).eval()
    randomize_trained_parts(m, std=0.05)
    save_model(m, tmp_path / "v", tiny_random=True)
    cfg = json.loads((tmp_path / "v" / "config.json").read_text())
    assert cfg["kind"] == "video" and cfg["tiny_random"] is True and cfg["spec"]["num_parts"] == N_C
    m2 = load_model(tmp_path / "v")
    x, cond = _inputs(spec)
    with torch.no_grad():
        assert torch.equal(m(x, 10, cond, 4), m2(x, 10, cond, 4))
    # a config that disagrees with the weights: every mismatch is named
    cfg["spec"]["num_parts"] = N_C + 2
    (tmp_path / "v" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"wrong shape.*controlnet_cond_embedding.conv_in.weight"):
        load_model(tmp_path / "v")
    with pytest.raises(ValueError, match="config.json"):
        load_model(tmp_path)


def test_base_lora_starts_neutral_and_round_trips(tmp_path, spec):
    from dataclasses import replace
    lora_spec = replace(spec, lora={"r": 4, "lora_alpha": 4, "target_modules": ["to_q", "to_k", "to_v", "to_out.0"]})
    torch.manual_seed(0)
    plain = build_video_model(spec).eval()
    torch.manual_seed(0)
    with_lora = build_video_model(lora_spec).eval()
    x, cond = _inputs(spec)
    with torch.no_grad():
        assert torch.equal(plain(x, 10, cond, 4), with_lora(x, 10, cond, 4))   # LoRA B = 0 at start
        names = [n for n, p in with_lora.base.named_parameters() if ".lora_B" in n]
        assert names and all(any(p is q for q in with_lora.trainable_parameters())
                             for n, p in with_lora.base.named_parameters() if ".lora_" in n)
        for n, p in with_lora.base.named_parameters():
            if ".lora_" in n:
                p.normal_(std=0.05)
        changed = with_lora(x, 10, cond, 4)
    assert not torch.equal(changed, plain(x, 10, cond, 4))
    save_model(with_lora, tmp_path / "lora")
    again = load_model(tmp_path / "lora")
    with torch.no_grad():
        assert torch.equal(again(x, 10, cond, 4), changed)
