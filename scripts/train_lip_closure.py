"""Train the lip-closure head (vlogger_core/motion/closure.py) on a synthetic motion corpus.

    python scripts/make_motion_corpus.py CORPUS --clips 1500 --seed 1
    python scripts/make_motion_corpus.py HELDOUT --clips 40 --split heldout
    python scripts/train_lip_closure.py --data CORPUS --out RUN --heldout HELDOUT \
        --export models/motion/vlogger_lip_closure.safetensors

Prints the held-out figures (bilabial and pause recall, false shut on open frames) at the end.
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from vlogger_core.motion.closure import ClosureConfig, load_closure  # noqa: E402
from vlogger_core.training.cli import config_from, parser, run_cli  # noqa: E402
from vlogger_core.training.closure import HELP, ClosureTrainConfig, evaluate, train  # noqa: E402
from vlogger_core.training.trainer import export  # noqa: E402


def main() -> None:
    ap = parser(ClosureTrainConfig, HELP, "scripts/train_lip_closure.py", __doc__)
    ap.add_argument("--heldout", default="", help="held-out corpus to report figures on")
    ap.add_argument("--lookahead", type=int, default=2, help="frames of future audio each frame sees")
    ap.add_argument("--width", type=int, default=64, help="channels of the temporal convolutions")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    ap.add_argument("--export", default="", help="copy the final closure.safetensors here")

    def run(a) -> Path:
        if a.threads:
            torch.set_num_threads(a.threads)
        final = train(config_from(ClosureTrainConfig, a), ClosureConfig(lookahead=a.lookahead, width=a.width),
                      log=lambda s: print(s, flush=True))
        if a.heldout:
            print(json.dumps(evaluate(load_closure(final), a.heldout)), flush=True)
        return export(final, Path(a.export)) if a.export else final

    run_cli(ap, sys.argv[1:], run)


if __name__ == "__main__":
    main()
