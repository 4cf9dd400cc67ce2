"""VLOGGER_TrainLoRA and the loader's LoRA inputs through the real server (tiny random model:
plumbing only, the images are noise)."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

LORA = "astronaut_lora_demo"


@pytest.fixture(scope="module")
def trained(comfy):
    res = comfy.run(comfy.workflow("personalize_lora"))
    assert res.error is None, res.error
    return res


def _sample(comfy, lora: str, strength: float) -> np.ndarray:
    """The workflow's sampler on the loader with this LoRA setting: frames as uint8."""
    wf = comfy.workflow("personalize_lora")
    prompt = {k: wf[k] for k in ("1", "2", "3", "4", "5", "6", "7", "8", "10", "11")}
    prompt["8"] = {**wf["8"], "inputs": {**wf["8"]["inputs"], "lora": lora, "lora_strength": strength}}
    prompt["10"] = {**wf["10"], "inputs": {**wf["10"]["inputs"], "video_model": ["8", 0]}}
    res = comfy.run(prompt)
    assert res.error is None, res.error
    return np.stack([np.array(Image.open(io.BytesIO(comfy.fetch(f)))) for f in res.outputs["11"]["images"]])


def test_train_lora_writes_the_folder_and_says_how_long(comfy, trained):
    lora = comfy.models_dir / "vlogger" / "lora" / LORA
    info = json.loads((lora / "lora.json").read_text())
    assert (lora / "lora.safetensors").stat().st_size > 1000
    assert info["model_folder"] == "tiny-random-pixel" and info["rank"] == 4 and info["steps"] == 8
    text = " ".join(trained.outputs["21"]["text"])
    assert "should take about" in text and "loss" in text, text
    assert len(trained.outputs["11"]["images"]) == 4
    assert LORA in str(comfy.object_info()["VLOGGER_VideoModelLoader"]["input"]["optional"]["lora"])


def test_loader_applies_the_lora_with_a_strength(comfy, trained):
    plain = _sample(comfy, "(none)", 1.0)
    assert np.array_equal(_sample(comfy, LORA, 0.0), plain)       # strength 0 == no LoRA
    strong = _sample(comfy, LORA, 2.0)
    assert np.abs(strong.astype(int) - plain).max() > 0
    print(f"\nmean |frame difference| at strength 2: {np.abs(strong.astype(float) - plain).mean():.2f} / 255")


def test_lora_for_another_model_and_twice(comfy, trained):
    wf = comfy.workflow("personalize_lora")
    bad = {"8": {**wf["8"], "inputs": {**wf["8"]["inputs"], "model_folder": "tiny-random-sd",
                                       "checkpoint": "tiny-random-sd1.safetensors", "lora": LORA}},
           "9": {"class_type": "VLOGGER_TrainLoRA", "inputs": {**wf["21"]["inputs"], "video_model": ["8", 0],
                                                                "dataset": ["12", 0], "lora_name": "never"}},
           "12": {"class_type": "PrimitiveString", "inputs": {"value": f"vlogger_datasets/{LORA}"}}}
    res = comfy.run(bad)
    err = str(res.error)
    assert "[VLOGGER_VideoModelLoader] input 'lora'" in err and "another model (tiny-random-pixel)" in err, err
    # a model that already carries a LoRA cannot get a second one (a relative dataset path is found)
    bad["8"] = {**wf["8"], "inputs": {**wf["8"]["inputs"], "lora": LORA}}
    err = str(comfy.run(bad).error)
    assert "[VLOGGER_TrainLoRA] input 'video_model'" in err and "already has" in err, err


def test_train_lora_bad_dataset(comfy):
    wf = comfy.workflow("personalize_lora")
    prompt = {"8": wf["8"], "9": {"class_type": "PrimitiveString", "inputs": {"value": "/no/such/dataset"}},
              "21": {**wf["21"], "inputs": {**wf["21"]["inputs"], "dataset": ["9", 0]}}}
    err = str(comfy.run(prompt).error)
    assert "[VLOGGER_TrainLoRA] input 'dataset'" in err and "no dataset.json" in err, err


def test_lora_settings_that_cannot_fit_are_refused(comfy, trained):
    wf = comfy.workflow("personalize_lora")
    prompt = {"8": wf["8"], "12": {"class_type": "PrimitiveString", "inputs": {"value": f"vlogger_datasets/{LORA}"}},
              "21": {**wf["21"], "inputs": {**wf["21"]["inputs"], "dataset": ["12", 0], "batch_size": 4096,
                                            "lora_name": "too_big"}}}
    err = str(comfy.run(prompt).error)
    assert "[VLOGGER_TrainLoRA] input 'batch_size'" in err and "needs about" in err, err
    assert "lower batch_size to" in err and "Fix:" in err, err
    assert not (comfy.models_dir / "vlogger" / "lora" / "too_big").exists()


def test_lora_on_the_frozen_base_too(comfy, trained):
    """include_base: the LoRA also covers the base UNet's attention; strength 0 is still exactly
    the model without it, and the loader re-creates the same layers."""
    from safetensors import safe_open

    wf = comfy.workflow("personalize_lora")
    prompt = {"8": wf["8"], "12": {"class_type": "PrimitiveString", "inputs": {"value": f"vlogger_datasets/{LORA}"}},
              "21": {**wf["21"], "inputs": {**wf["21"]["inputs"], "dataset": ["12", 0], "include_base": True,
                                            "steps": 3, "lora_name": "with_base"}}}
    res = comfy.run(prompt)
    assert res.error is None, res.error
    folder = comfy.models_dir / "vlogger" / "lora" / "with_base"
    info = json.loads((folder / "lora.json").read_text())
    with safe_open(str(folder / "lora.safetensors"), "pt") as f:
        keys = list(f.keys())
    base_keys = [k for k in keys if k.startswith("base.") and ".temporal." not in k]
    assert info["include_base"] is True and info["batch_size"] == 2 and base_keys, keys[:5]
    plain = _sample(comfy, "(none)", 1.0)
    assert np.array_equal(_sample(comfy, "with_base", 0.0), plain)
    assert np.abs(_sample(comfy, "with_base", 2.0).astype(int) - plain).max() > 0
