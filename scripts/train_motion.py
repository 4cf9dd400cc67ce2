"""Train the VLOGGER motion diffusion model (stage 1) on a plain-file corpus.

    python scripts/train_motion.py --data CORPUS_DIR --out RUN_DIR [--steps 6000] [--threads 1]
    accelerate launch scripts/train_motion.py ...     # multi-GPU / mixed precision

--resume continues RUN_DIR/last. Writes RUN_DIR/model.safetensors, loss_log.jsonl,
loss_plot.png. --export copies the final weights to a path (e.g. the shipped default).
"""
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from vlogger_core.motion.model import MotionModelConfig  # noqa: E402
from vlogger_core.training.cli import config_from, parser, run_cli  # noqa: E402
from vlogger_core.training.motion import HELP, TrainConfig, train  # noqa: E402


def main() -> None:
    ap = parser(TrainConfig, HELP, "scripts/train_motion.py", __doc__)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--frames-per-token", type=int, default=2)
    ap.add_argument("--fps", type=float, default=25.0, help="the model's native frame rate")
    ap.add_argument("--max-frames", type=int, default=256, help="longest training crop (frames)")
    ap.add_argument("--lambda-temp-expr", type=float, default=0.05)
    ap.add_argument("--lambda-temp-pose", type=float, default=0.5)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    ap.add_argument("--export", default="", help="copy the final model.safetensors here")

    def run(a) -> Path:
        if a.threads:
            torch.set_num_threads(a.threads)
        mc = MotionModelConfig(fps=a.fps, d_model=a.d_model, frames_per_token=a.frames_per_token,
                               max_train_frames=a.max_frames, lambda_temp_expr=a.lambda_temp_expr,
                               lambda_temp_pose=a.lambda_temp_pose)
        final = train(config_from(TrainConfig, a), mc, log=lambda s: print(s, flush=True))
        if a.export:
            Path(a.export).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(final, a.export)
            print(f"exported {a.export}")
        return final
    run_cli(ap, None, run)


if __name__ == "__main__":
    main()
