"""Training from footage, on this CPU (figures of issue 7; docs/training.md quotes them).

1. Dataset preparation of examples/talking_astronaut.mp4 (the default renderer's own output,
   96 frames, whose true motion ships beside it): seconds per frame, landmark error, and how
   well the motion was recovered (scripts/prep_recovery.py).
2. Motion fine-tuning from the shipped model on that clip: 300 steps at batch 8.
3. The video model, TINY (32x32, N = 4, random frozen base: machinery, not quality), in the
   paper's two stages on that clip prepared at 32 px: stage 1 200 steps at batch 8, stage 2 100
   steps at batch 2 clips; and a LoRA (rank 4) alone on the untrained model, 200 steps.
4. The memory estimate the trainer checks settings against, for the real pixel128_video config.
Losses are the mean of the first and of the last 20 logged steps (single steps are noisy).
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))


def _ends(losses: list[float], k: int = 20) -> tuple[float, float]:
    k = min(k, max(1, len(losses) // 4))
    return round(sum(losses[:k]) / k, 4), round(sum(losses[-k:]) / k, 4)


def _log_losses(folder: Path) -> list[float]:
    return [json.loads(l)["loss"] for l in (folder / "loss_log.jsonl").read_text().splitlines()]


def run() -> dict:
    from make_tiny_video_model import tiny_pixel_spec
    from prep_recovery import recovery

    from vlogger_core.body.model import load_body
    from vlogger_core.diffusion.model import build_video_model, pixel128_spec
    from vlogger_core.diffusion.weights import load_model, save_model
    from vlogger_core.training.dataset_format import read_clip
    from vlogger_core.training.dataset_prep import PrepSettings, prepare_dataset
    from vlogger_core.training.lora import LoraTrainConfig, train_lora
    from vlogger_core.training.motion import TrainConfig
    from vlogger_core.training.motion import train as train_motion
    from vlogger_core.training.video import (
        VideoTrainConfig,
        estimate_memory_gb,
        stage_parameters,
        train,
    )

    quiet = dict(log=lambda *a: None)
    video = REPO / "examples" / "talking_astronaut.mp4"
    res: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        body = load_body()
        t = time.perf_counter()
        s = prepare_dataset([video], tmp / "ds", body, PrepSettings(clip_frames=96, frame_size=32), **quiet)
        res["prep_seconds_per_frame"] = round((time.perf_counter() - t) / 96, 4)
        res["prep_landmark_error_px"] = s["clips"][0]["landmark_error_px"]
        res["prep_fov_deg"] = s["clips"][0]["fov_diag_deg"]
        rec = recovery(body, read_clip(tmp / "ds", "clip_0000"))
        res.update({f"recovered_{k}": (round(v, 3) if isinstance(v, float) else [round(x, 2) for x in v])
                    for k, v in rec.items()})
        data = str(tmp / "ds")

        t = time.perf_counter()
        train_motion(TrainConfig(data=data, out=str(tmp / "motion"), steps=300, batch_size=8, lr=2e-4, warmup=10,
                                 log_every=1, ckpt_every=10**9, min_frames=16, seed=0,
                                 init=str(REPO / "models" / "motion" / "vlogger_motion_default.safetensors")), **quiet)
        res["motion_finetune_s_per_step"] = round((time.perf_counter() - t) / 300, 3)
        res["motion_finetune_loss_first_last"] = _ends(_log_losses(tmp / "motion"))

        torch.manual_seed(0)
        fresh = save_model(build_video_model(tiny_pixel_spec()), tmp / "tiny", tiny_random=True)
        for stage, steps, batch, init in ((1, 200, 8, fresh), (2, 100, 2, tmp / "s1" / "model")):
            t = time.perf_counter()
            train(VideoTrainConfig(data=data, out=str(tmp / f"s{stage}"), stage=stage, steps=steps, batch_size=batch,
                                   lr=3e-3, warmup=5, log_every=1, ckpt_every=10**9, init=str(init), cpu=True), **quiet)
            res[f"video_stage{stage}_s_per_step"] = round((time.perf_counter() - t) / steps, 3)
            res[f"video_stage{stage}_loss_first_last"] = _ends(_log_losses(tmp / f"s{stage}"))
        # the LoRA alone on the untrained model (the stage-2 model has already learnt this one
        # clip, which leaves a LoRA nothing to learn: measured 0.317 -> 0.315)
        model = load_model(fresh)
        t = time.perf_counter()
        train_lora(model, LoraTrainConfig(data=data, out=str(tmp / "lora"), steps=200, lr=3e-3, rank=4, batch_size=2,
                                          seed=0), **quiet)
        res["lora_s_per_step"] = round((time.perf_counter() - t) / 200, 3)
        res["lora_loss_first_last"] = _ends(_log_losses(tmp / "lora"))

    big = build_video_model(pixel128_spec())
    for stage in (1, 2):
        fixed, per = estimate_memory_gb(big, stage_parameters(big, stage), stage)
        res[f"pixel128_stage{stage}_memory_gb_fixed_per_sample"] = [round(fixed, 2), round(per, 2)]
    res["pixel128_num_frames"] = big.spec.num_frames
    res["threads"] = torch.get_num_threads()
    res["load_avg_1min"] = round(os.getloadavg()[0], 2)
    return res
