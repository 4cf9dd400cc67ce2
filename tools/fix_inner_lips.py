"""Put the baked body's inner-lip landmarks on the lips they belong to.

The bake lifts mediapipe's points from a render of the neutral head, whose mouth is closed, so
the six inner-lip points between the corners (iBUG 61-63 upper, 65-67 lower) land on triangles
spanning the seam where the lips meet: they do not separate when the mouth opens (measured: a
0.4 mm gap at jawOpen 0.6, against 36 mm for the outer lips), so no fit could match an open
mouth in a photo (a smile showing teeth), and the photo's teeth were warped onto the lips.

Each of those six points is moved to the nearest lip vertex (within 6 mm of where it was) on
its own side of the seam: for the upper points one that jawOpen barely moves, for the lower
points one that it moves down with the jaw. The corners (60, 64) stay. Idempotent: a body whose
inner lips already separate is left alone. tools/bake_anny_body.py calls fix_inner_lips().

    .venv/bin/python tools/fix_inner_lips.py [--body models/body/anny_smplx.npz]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vlogger_core.motion.params import ARKIT52  # noqa: E402

EXPR_OFFSET = 300
UPPER, LOWER = (61, 62, 63), (65, 66, 67)
RADIUS = 0.006


def _landmarks(body: dict) -> np.ndarray:
    f = body["f"][body["lmk_faces_idx"]]
    return (body["v_template"][f] * body["lmk_bary_coords"][..., None]).sum(1)


def inner_gap_ratio(body: dict) -> float:
    """Inner (62-66) over outer (51-57) lip separation change under jawOpen."""
    jaw = body["shapedirs"][:, :, EXPR_OFFSET + ARKIT52.index("jawOpen")]
    f = body["f"][body["lmk_faces_idx"]]
    move = (jaw[f] * body["lmk_bary_coords"][..., None]).sum(1)[:, 1]
    return float((move[62 - 17] - move[66 - 17]) / (move[51 - 17] - move[57 - 17] + 1e-9))


def fix_inner_lips(body: dict, parts: dict) -> dict:
    if inner_gap_ratio(body) > 0.3:
        return body
    lips_id = list(parts["part_names"]).index("lips")
    f = body["f"].astype(np.int64)
    lip_v = np.unique(f[parts["face_labels"][: len(f)] == lips_id])
    v = body["v_template"]
    dy = body["shapedirs"][:, :, EXPR_OFFSET + ARKIT52.index("jawOpen")][:, 1]
    full = float(-dy[lip_v].min())                     # the most a lip vertex moves down
    lm = _landmarks(body)
    faces_idx, bary = body["lmk_faces_idx"].copy(), body["lmk_bary_coords"].copy()
    for k in UPPER + LOWER:
        p = lm[k - 17]
        near = lip_v[np.linalg.norm(v[lip_v] - p, axis=1) < RADIUS]
        side = near[dy[near] > -0.2 * full] if k in UPPER else near[dy[near] < -0.6 * full]
        if not len(side):
            raise RuntimeError(f"no {'upper' if k in UPPER else 'lower'} lip vertex near iBUG {k}")
        best = side[np.argmin(np.linalg.norm(v[side, :2] - p[:2], axis=1))]
        face = int(np.flatnonzero((f == best).any(1))[0])
        faces_idx[k - 17] = face
        bary[k - 17] = (f[face] == best).astype(np.float32)
    out = dict(body, lmk_faces_idx=faces_idx, lmk_bary_coords=bary)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--body", type=Path, default=ROOT / "models" / "body" / "anny_smplx.npz")
    a = ap.parse_args()
    with np.load(a.body, allow_pickle=False) as z:
        body = {k: z[k] for k in z.files}
    with np.load(a.body.with_name(a.body.stem + "_parts.npz"), allow_pickle=False) as z:
        parts = {k: z[k] for k in z.files}
    before = inner_gap_ratio(body)
    fixed = fix_inner_lips(body, parts)
    if fixed is body:
        print(f"{a.body}: inner lips already separate (ratio {before:.2f})")
        return
    tmp = a.body.with_name(a.body.stem + ".tmp.npz")
    np.savez_compressed(tmp, **fixed)
    tmp.replace(a.body)
    print(f"{a.body}: inner-lip landmarks moved; jawOpen separation inner/outer {before:.2f} -> "
          f"{inner_gap_ratio(fixed):.2f}")


if __name__ == "__main__":
    main()
