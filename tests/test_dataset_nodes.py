"""Dataset preparation and motion fine-tuning nodes through the real server."""
from __future__ import annotations

from pathlib import Path


def test_prepare_and_finetune_chain(comfy):
    wf = comfy.workflow("prepare_and_finetune")
    res = comfy.run(wf)
    assert res.error is None, res.error
    ds = comfy.output_dir / "vlogger_datasets" / "astronaut_demo"
    assert (ds / "dataset.json").exists() and len(list((ds / "clips").iterdir())) == 2   # 96 frames / 48
    model = comfy.models_dir / "vlogger" / "motion" / "astronaut_demo_motion.safetensors"
    assert model.exists() and (model.parent / "astronaut_demo_motion_loss_plot.png").exists()
    assert res.outputs["3"]["images"], "the loss plot is shown"
    # the fine-tuned model appears in the loader's list for later runs
    assert "astronaut_demo_motion.safetensors" in str(comfy.object_info()["VLOGGER_MotionModelLoader"])


def test_bad_dataset_path_names_the_input(comfy):
    wf = comfy.workflow("prepare_and_finetune")
    prompt = {"3": {**wf["3"], "inputs": {**wf["3"]["inputs"], "dataset": ["9", 0]}},
              "9": {"class_type": "PrimitiveString", "inputs": {"value": "/nonexistent/dataset"}}}
    res = comfy.run(prompt)
    assert "[VLOGGER_TrainMotion] input 'dataset'" in str(res.error), res.error
