"""Train the VLOGGER motion diffusion model (stage 1) on a plain-file corpus.

    python scripts/train_motion.py --data CORPUS_DIR --out RUN_DIR [--steps 6000] [--threads 1]
    accelerate launch scripts/train_motion.py ...     # multi-GPU / mixed precision

Resumes from RUN_DIR/last if present. Writes RUN_DIR/model.safetensors, loss_log.jsonl,
loss_plot.png. --export copies the final weights to a path (e.g. the shipped default).
"""
import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from vlogger_core.motion.model import MotionModelConfig  # noqa: E402
from vlogger_core.training.motion import TrainConfig, train  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="corpus folder (clip folders with audio.wav + motion.npz)")
    ap.add_argument("--out", required=True, help="run folder (checkpoints, logs)")
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=4e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--frames-per-token", type=int, default=2)
    ap.add_argument("--fps", type=float, default=25.0, help="the model's native frame rate")
    ap.add_argument("--max-frames", type=int, default=256, help="longest training crop (frames)")
    ap.add_argument("--lambda-temp-expr", type=float, default=0.05)
    ap.add_argument("--lambda-temp-pose", type=float, default=0.5)
    ap.add_argument("--mixed-precision", default="no", choices=["no", "fp16", "bf16"])
    ap.add_argument("--cpu", action="store_true", help="force the CPU even if a GPU exists")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    ap.add_argument("--time-limit-min", type=float, default=0.0, help="stop and save after this many minutes")
    ap.add_argument("--export", default="", help="copy the final model.safetensors here")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    mc = MotionModelConfig(fps=a.fps, d_model=a.d_model, frames_per_token=a.frames_per_token, max_train_frames=a.max_frames,
                           lambda_temp_expr=a.lambda_temp_expr, lambda_temp_pose=a.lambda_temp_pose)
    cfg = TrainConfig(data=a.data, out=a.out, steps=a.steps, batch_size=a.batch_size, lr=a.lr,
                      seed=a.seed, mixed_precision=a.mixed_precision, cpu=a.cpu,
                      time_limit_min=a.time_limit_min)
    final = train(cfg, mc, log=lambda s: print(s, flush=True))
    if a.export:
        Path(a.export).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(final, a.export)
        print(f"exported {a.export}")


if __name__ == "__main__":
    main()
