"""Video-diffusion nodes through the real server, with TINY RANDOM model folders (noise, not results)."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def tiny_models(comfy):
    video_dir = comfy.models_dir / "vlogger" / "video"   # made by conftest before the server started
    (comfy.models_dir / "checkpoints" / "not-sd.safetensors").write_bytes(
        (comfy.models_dir / "vlogger" / "video" / "tiny-random-sr64" / "trained_parts.safetensors").read_bytes())
    return video_dir


def _loader(folder, checkpoint="(none: pixel-space model)"):
    return {"class_type": "VLOGGER_VideoModelLoader", "inputs": {"model_folder": folder, "checkpoint": checkpoint}}


def test_loader_lists_model_folders_and_checkpoints(comfy, tiny_models):
    info = comfy.object_info()["VLOGGER_VideoModelLoader"]["input"]["required"]
    folders = info["model_folder"][1]["options"] if isinstance(info["model_folder"][1], dict) and "options" in info["model_folder"][1] else info["model_folder"][0]
    assert {"tiny-random-pixel", "tiny-random-sr64", "tiny-random-sd"} <= set(folders)
    ckpts = info["checkpoint"][1]["options"] if "options" in info["checkpoint"][1] else info["checkpoint"][0]
    assert "tiny-random-sd1.safetensors" in ckpts


def test_super_resolution_node_runs(comfy, tiny_models):
    prompt = {
        "1": _loader("tiny-random-sr64"),
        "2": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 32, "batch_size": 5, "color": 8421504}},
        "3": {"class_type": "VLOGGER_SuperResolution",
              "inputs": {"sr_model": ["1", 0], "images": ["2", 0], "steps": 2, "seed": 0, "scheduler": "ddim",
                         "tile": 32, "tile_overlap": 16}},
        "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}},
    }
    res = comfy.run(prompt)
    assert res.error is None, res.error
    assert len(res.outputs["4"]["images"]) == 5


def test_super_resolution_wrong_size_is_a_clear_error(comfy, tiny_models):
    prompt = {
        "1": _loader("tiny-random-sr64"),
        "2": {"class_type": "EmptyImage", "inputs": {"width": 48, "height": 48, "batch_size": 2, "color": 0}},
        "3": {"class_type": "VLOGGER_SuperResolution",
              "inputs": {"sr_model": ["1", 0], "images": ["2", 0], "steps": 1, "seed": 0, "scheduler": "ddim",
                         "tile": 0, "tile_overlap": 0}},
        "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}},
    }
    res = comfy.run(prompt)
    assert res.error is not None
    assert "[VLOGGER_SuperResolution] input 'images'" in str(res.error) and "32x32" in str(res.error)


def test_loader_rejects_non_sd_checkpoint(comfy, tiny_models):
    prompt = {"1": _loader("tiny-random-sd", "not-sd.safetensors"),
              "2": {"class_type": "VLOGGER_SuperResolution",
                    "inputs": {"sr_model": ["1", 0], "images": ["3", 0], "steps": 1, "seed": 0,
                               "scheduler": "ddim", "tile": 0, "tile_overlap": 0}},
              "3": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 32, "batch_size": 1, "color": 0}},
              "4": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}}
    res = comfy.run(prompt)
    assert res.error is not None
    assert "[VLOGGER_VideoModelLoader] input 'checkpoint'" in str(res.error)
    assert "SD 1.x" in str(res.error)


def _maps(n, size=32, color=0x406080):
    return {"class_type": "EmptyImage", "inputs": {"width": size, "height": size, "batch_size": n, "color": color}}


def test_outpaint_sr_to_mp4_path(comfy, tiny_models):
    """The diffusion path end to end on the server: maps -> outpaint -> SR -> MP4 (tiny random: noise)."""
    prompt = {
        "1": _loader("tiny-random-pixel"),
        "2": {"class_type": "LoadImage", "inputs": {"image": "astronaut.png"}},
        "3": _maps(10), "4": _maps(10, color=0x806040),
        "5": {"class_type": "VLOGGER_Outpaint",
              "inputs": {"video_model": ["1", 0], "reference": ["2", 0], "dense_maps": ["3", 0],
                         "warped_maps": ["4", 0], "overlap": 2, "steps": 2, "seed": 3, "scheduler": "ddim",
                         "guidance": 1.5}},
        "6": _loader("tiny-random-sr64"),
        "7": {"class_type": "VLOGGER_SuperResolution",
              "inputs": {"sr_model": ["6", 0], "images": ["5", 0], "steps": 2, "seed": 0, "scheduler": "dpmpp_2m",
                         "tile": 0, "tile_overlap": 0, "window_overlap": 1}},
        "8": {"class_type": "VLOGGER_SaveVideo",
              "inputs": {"images": ["7", 0], "fps": 24.0, "filename_prefix": "vlogger/tiny_random_diffusion"}},
    }
    res = comfy.run(prompt)
    assert res.error is None, res.error
    import av
    path = res.outputs["8"]
    files = res.files()
    assert files, path
    data = comfy.fetch(files[0])
    import io as _io
    with av.open(_io.BytesIO(data)) as c:
        s = c.streams.video[0]
        frames = sum(1 for _ in c.decode(s))
        assert (s.codec_context.width, s.codec_context.height) == (64, 64)
    assert frames == 10


def test_sampler_and_outpaint_errors_name_the_input(comfy, tiny_models):
    base = {"1": _loader("tiny-random-pixel"), "2": _maps(1), "3": _maps(5), "4": _maps(5)}
    sampler = dict(base, **{"5": {"class_type": "VLOGGER_VideoSampler",
                                  "inputs": {"video_model": ["1", 0], "reference": ["2", 0], "dense_maps": ["3", 0],
                                             "warped_maps": ["4", 0], "steps": 1, "seed": 0, "scheduler": "ddim",
                                             "guidance": 1.0}},
                            "6": {"class_type": "PreviewImage", "inputs": {"images": ["5", 0]}}})
    res = comfy.run(sampler)
    assert "[VLOGGER_VideoSampler] input 'controls'" in str(res.error) and "5 frames" in str(res.error)
    out = dict(base, **{"5": {"class_type": "VLOGGER_Outpaint",
                              "inputs": {"video_model": ["1", 0], "reference": ["2", 0], "dense_maps": ["3", 0],
                                         "warped_maps": ["4", 0], "overlap": 4, "steps": 1, "seed": 0,
                                         "scheduler": "ddim", "guidance": 1.0}},
                        "6": {"class_type": "PreviewImage", "inputs": {"images": ["5", 0]}}})
    res = comfy.run(out)
    assert "[VLOGGER_Outpaint] input 'overlap'" in str(res.error)
    big = dict(out)
    big["3"], big["4"] = _maps(5, size=48), _maps(5, size=48)
    big["5"] = {**out["5"], "inputs": {**out["5"]["inputs"], "overlap": 2}}
    res = comfy.run(big)
    assert "[VLOGGER_Outpaint] input 'controls'" in str(res.error) and "32x32" in str(res.error)


def test_sd1_latent_model_clip_through_the_server(comfy, tiny_models):
    prompt = {
        "1": _loader("tiny-random-sd", "tiny-random-sd1.safetensors"),
        "2": {"class_type": "LoadImage", "inputs": {"image": "astronaut.png"}},
        "3": _maps(4, size=64), "4": _maps(4, size=64, color=0x202020),
        "5": {"class_type": "VLOGGER_VideoSampler",
              "inputs": {"video_model": ["1", 0], "reference": ["2", 0], "dense_maps": ["3", 0],
                         "warped_maps": ["4", 0], "steps": 2, "seed": 1, "scheduler": "dpmpp_2m", "guidance": 2.0}},
        "6": {"class_type": "PreviewImage", "inputs": {"images": ["5", 0]}},
    }
    res = comfy.run(prompt)
    assert res.error is None, res.error
    assert len(res.outputs["6"]["images"]) == 4


def test_streamed_diffusion_video_node_writes_mp4(comfy, tiny_models):
    prompt = {
        "1": _loader("tiny-random-pixel"), "6": _loader("tiny-random-sr64"),
        "2": {"class_type": "LoadImage", "inputs": {"image": "astronaut.png"}},
        "3": _maps(9), "4": _maps(9, color=0x806040),
        "5": {"class_type": "VLOGGER_DiffusionVideo",
              "inputs": {"video_model": ["1", 0], "reference": ["2", 0], "dense_maps": ["3", 0],
                         "warped_maps": ["4", 0], "overlap": 2, "steps": 2, "seed": 0, "scheduler": "ddim",
                         "guidance": 1.0, "sr_stage_1": ["6", 0], "sr_steps": 2, "sr_tile": 0,
                         "sr_window_overlap": 1, "fps": 24.0, "filename_prefix": "vlogger/tiny_random_stream"}},
    }
    res = comfy.run(prompt)
    assert res.error is None, res.error
    import io as _io

    import av
    with av.open(_io.BytesIO(comfy.fetch(res.files()[0]))) as c:
        s = c.streams.video[0]
        assert sum(1 for _ in c.decode(s)) == 9
        assert (s.codec_context.width, s.codec_context.height) == (64, 64)
    bad = {k: v for k, v in prompt.items()}
    bad["5"] = {**prompt["5"], "inputs": {**prompt["5"]["inputs"], "sr_stage_1": ["1", 0]}}
    res = comfy.run(bad)
    assert "[VLOGGER_DiffusionVideo] input 'sr_stage_1'" in str(res.error)


def _mp4(comfy, res):
    import os
    import tempfile

    from vlogger_core.media import read_video
    mp4 = [f for f in res.files() if f["filename"].endswith(".mp4")][0]
    with tempfile.NamedTemporaryFile(suffix=".mp4", delete=False) as t:
        t.write(comfy.fetch(mp4))
    try:
        return read_video(t.name)
    finally:
        os.unlink(t.name)


def test_shipped_diffusion_workflow_from_real_controls(comfy, tiny_models):
    """The shipped diffusion workflow: photo fit + speech motion -> RenderControls (real
    VLOGGER_CONTROLS) -> temporal outpainting -> SR -> MP4 with speech. Tiny random weights, so
    only the plumbing is checked: frame count, size, audio length, determinism per seed."""
    import numpy as np
    wf = comfy.workflow("diffusion_video")
    runs = {}
    for tag, seed in (("a", 5), ("b", 5), ("c", 6)):
        wf["10"]["inputs"].update(seed=seed, filename_prefix=f"vlogger/test_diffusion_{tag}")
        res = comfy.run(wf)
        assert res.error is None, res.error
        runs[tag] = _mp4(comfy, res)
    frames, fps, audio, rate = runs["a"]
    n = wf["7"]["inputs"]["max_frames"]
    assert frames.shape == (n, 64, 64, 3) and abs(fps - 24) < 1e-6
    assert audio is not None and abs(len(audio) / rate - n / 24) < 0.05
    assert np.array_equal(runs["a"][0], runs["b"][0]), "same seed must give the same video"
    assert not np.array_equal(runs["a"][0], runs["c"][0]), "another seed must give another video"


def test_video_sampler_takes_rendered_controls(comfy, tiny_models):
    wf = comfy.workflow("diffusion_video")
    prompt = {k: wf[k] for k in ("1", "2", "3", "4", "5", "6", "7", "8")}
    prompt["7"] = {**wf["7"], "inputs": {**wf["7"]["inputs"], "max_frames": 4}}
    prompt["11"] = {"class_type": "VLOGGER_VideoSampler",
                    "inputs": {"video_model": ["8", 0], "reference": ["1", 0], "controls": ["7", 3],
                               "steps": 2, "seed": 0, "scheduler": "ddim", "guidance": 2.0}}
    prompt["12"] = {"class_type": "PreviewImage", "inputs": {"images": ["11", 0]}}
    res = comfy.run(prompt)
    assert res.error is None, res.error
    assert len(res.outputs["12"]["images"]) == 4
    # controls of the wrong size for the model: the sampler names the input
    prompt["7"] = {**prompt["7"], "inputs": {**prompt["7"]["inputs"], "width": 48, "height": 48}}
    res = comfy.run(prompt)
    assert "[VLOGGER_VideoSampler] input 'controls'" in str(res.error), res.error


def test_comfyui_upscale_model_nodes_replace_the_sr_cascade(comfy, tiny_models):
    """ComfyUI's own UpscaleModelLoader + 'Upscale Image (using Model)' take the clip frames in
    place of VLOGGER_SuperResolution (tiny random 2x ESRGAN: plumbing only)."""
    prompt = {
        "1": _loader("tiny-random-pixel"),
        "2": {"class_type": "LoadImage", "inputs": {"image": "astronaut.png"}},
        "3": _maps(6), "4": _maps(6, color=0x806040),
        "5": {"class_type": "VLOGGER_Outpaint",
              "inputs": {"video_model": ["1", 0], "reference": ["2", 0], "dense_maps": ["3", 0],
                         "warped_maps": ["4", 0], "overlap": 2, "steps": 2, "seed": 3, "scheduler": "ddim",
                         "guidance": 1.0}},
        "6": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "tiny-random-esrgan-x2.safetensors"}},
        "7": {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["6", 0], "image": ["5", 0]}},
        "8": {"class_type": "VLOGGER_SaveVideo",
              "inputs": {"images": ["7", 0], "fps": 24.0, "filename_prefix": "vlogger/tiny_random_esrgan"}},
    }
    res = comfy.run(prompt)
    assert res.error is None, res.error
    frames, fps, _, _ = _mp4(comfy, res)
    assert frames.shape == (6, 64, 64, 3)


def test_bad_sr_chain_and_model_mix_name_the_input(comfy, tiny_models):
    """A refused SR chain names the slot at fault (also when the first slot is empty) and
    writes no file; an SR node given a video model names 'sr_model'."""
    base = {"1": _loader("tiny-random-pixel"), "6": _loader("tiny-random-sr64"),
            "2": {"class_type": "LoadImage", "inputs": {"image": "astronaut.png"}},
            "3": _maps(5), "4": _maps(5, color=0x806040)}

    def diffusion(**sr):
        return {"class_type": "VLOGGER_DiffusionVideo",
                "inputs": {"video_model": ["1", 0], "reference": ["2", 0], "dense_maps": ["3", 0],
                           "warped_maps": ["4", 0], "overlap": 2, "steps": 1, "seed": 0, "scheduler": "ddim",
                           "guidance": 1.0, "sr_steps": 1, "sr_tile": 0, "sr_window_overlap": 1, "fps": 24.0,
                           "filename_prefix": "vlogger/tiny_random_bad_chain", **sr}}
    res = comfy.run({**base, "5": diffusion(sr_stage_1=["6", 0], sr_stage_2=["6", 0])})
    msg = str(res.error)
    assert "[VLOGGER_DiffusionVideo] input 'sr_stage_2'" in msg and "64x64" in msg, msg
    res = comfy.run({**base, "5": diffusion(sr_stage_2=["1", 0])})
    assert "[VLOGGER_DiffusionVideo] input 'sr_stage_2'" in str(res.error) and "video model" in str(res.error)
    res = comfy.run({**base, "5": diffusion(sr_stage_1=["6", 0], sr_window_overlap=5)})
    assert "[VLOGGER_DiffusionVideo] input 'sr_window_overlap'" in str(res.error)
    assert not list((comfy.output_dir / "vlogger").glob("tiny_random_bad_chain*"))
    sr = {"1": _loader("tiny-random-pixel"), "2": _maps(3),
          "3": {"class_type": "VLOGGER_SuperResolution",
                "inputs": {"sr_model": ["1", 0], "images": ["2", 0], "steps": 1, "seed": 0, "scheduler": "ddim",
                           "tile": 0, "tile_overlap": 0}},
          "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}}}
    res = comfy.run(sr)
    assert "[VLOGGER_SuperResolution] input 'sr_model'" in str(res.error) and "video model" in str(res.error)
