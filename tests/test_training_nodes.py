"""VLOGGER_TrainLoRA and the loader's LoRA inputs through the real server (tiny random model:
plumbing only)."""
from __future__ import annotations


def test_train_lora_then_load_it_with_a_strength(comfy):
    res = comfy.run(comfy.workflow("personalize_lora"))
    assert res.error is None, res.error
    lora = comfy.models_dir / "vlogger" / "lora" / "astronaut_lora_demo"
    assert (lora / "lora.json").exists() and (lora / "lora.safetensors").exists()
    assert len(res.outputs["11"]["images"]) == 4
    info = comfy.object_info()["VLOGGER_VideoModelLoader"]["input"]["optional"]
    assert "astronaut_lora_demo" in str(info["lora"])
    loader = {"class_type": "VLOGGER_VideoModelLoader",
              "inputs": {"model_folder": "tiny-random-pixel", "checkpoint": "(none: pixel-space model)",
                         "lora": "astronaut_lora_demo", "lora_strength": 0.5}}
    wf = comfy.workflow("personalize_lora")
    prompt = {k: wf[k] for k in ("1", "2", "3", "4", "5", "6", "7")}
    prompt["8"] = loader
    prompt["10"] = {**wf["10"], "inputs": {**wf["10"]["inputs"], "video_model": ["8", 0]}}
    prompt["11"] = wf["11"]
    res = comfy.run(prompt)
    assert res.error is None, res.error
    # a LoRA made for another model is refused, naming the input
    bad = dict(prompt)
    bad["8"] = {**loader, "inputs": {**loader["inputs"], "model_folder": "tiny-random-sd",
                                     "checkpoint": "tiny-random-sd1.safetensors"}}
    res = comfy.run(bad)
    assert "[VLOGGER_VideoModelLoader] input 'lora'" in str(res.error) and "another model" in str(res.error)


def test_train_lora_bad_dataset(comfy):
    wf = comfy.workflow("personalize_lora")
    prompt = {"8": wf["8"], "9": {"class_type": "PrimitiveString", "inputs": {"value": "/no/such/dataset"}},
              "21": {**wf["21"], "inputs": {**wf["21"]["inputs"], "dataset": ["9", 0]}}}
    res = comfy.run(prompt)
    assert "[VLOGGER_TrainLoRA] input 'dataset'" in str(res.error), res.error
