"""Write the synthetic talking-motion corpus (espeak-ng speech + prior-driven motion).

    python scripts/make_motion_corpus.py OUT_DIR --clips 600 [--split train|heldout] [--fps 25] [--vocabulary phrases|words]
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vlogger_core.motion.synthetic.corpus import make_corpus  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="output folder (one sub-folder per clip)")
    ap.add_argument("--clips", type=int, default=600)
    ap.add_argument("--split", choices=["train", "heldout"], default="train",
                    help="heldout uses only held-out sentences and voices (for metrics)")
    ap.add_argument("--fps", type=float, default=25.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--vocabulary", choices=["phrases", "words"], default="phrases",
                    help="phrases: the templates the motion model learnt on; words: a broad vocabulary "
                         "(vlogger_core/motion/synthetic/words.py) for the lip-closure head")
    a = ap.parse_args()
    t0 = time.time()

    def progress(done, total):
        if done % 50 == 0 or done == total:
            print(f"{done}/{total} clips, {time.time() - t0:.0f} s", flush=True)

    idx = make_corpus(a.out, a.clips, a.split, a.fps, a.seed, progress, a.vocabulary)
    print(f"wrote {len(idx['clips'])} clips, {idx['seconds'] / 60:.1f} min of speech to {a.out}")


if __name__ == "__main__":
    main()
