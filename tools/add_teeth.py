"""Give the baked Anny body teeth: two curved bands (upper and lower) behind the lips, labelled
'teeth', so the semantic map has the class and an opening mouth shows teeth, not only a cavity.

Anny's mesh has a mouth cavity and a tongue but no teeth. Each band is a strip of quads along a
parabola in the mouth's horizontal plane, found from the lip vertices (width between the mouth
corners, front a few millimetres behind the inner lip, split at the lips' meeting line):
Front: just before the inner lip surfaces and behind the lips, so closed lips hide them.
- upper / lower teeth: skinned like the nearest vertex of the upper / lower half of the mouth,
  and moved by every expression rigidly, by the mean motion of that half of the mouth (so the
  lower teeth follow the jaw and neither band shears or slips behind the lips);
- shape directions copied from the nearest mouth vertex (they scale with the face).
Faces are appended (existing face and landmark indices do not change).

    .venv/bin/python tools/add_teeth.py [--body models/body/anny_smplx.npz]

rewrites the body and its _parts.npz in place (idempotent: a body that has teeth is left alone).
tools/bake_anny_body.py calls add_teeth() on a fresh bake.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vlogger_core.motion.params import ARKIT52  # noqa: E402

EXPR_OFFSET = 300                     # smplx reads expression directions from shapedirs[..., 300:]
ALONG, ACROSS = 14, 3                 # quads along the arc, rows from gum to edge


def _band(half_w, z_front, depth, y_top, y_bottom):
    """Vertices [(ALONG+1)*(ACROSS+1), 3] and quad faces of one curved strip (front-facing)."""
    xs = np.linspace(-half_w, half_w, ALONG + 1)
    zs = z_front - depth * (xs / half_w) ** 2
    ys = np.linspace(y_top, y_bottom, ACROSS + 1)
    v = np.array([[x, y, z] for y in ys for x, z in zip(xs, zs)], np.float32)
    f = []
    for r in range(ACROSS):
        for c in range(ALONG):
            a = r * (ALONG + 1) + c
            b, d, e = a + 1, a + ALONG + 1, a + ALONG + 2
            f += [[a, d, b], [b, d, e]]           # counter-clockwise seen from +z (the front)
    return v, np.array(f, np.int32)


def add_teeth(body: dict, parts: dict) -> tuple[dict, dict]:
    names = [str(n) for n in parts["part_names"]]
    labels = parts["face_labels"]
    teeth_id = names.index("teeth")
    if (labels == teeth_id).any():
        return body, parts
    v, f = body["v_template"], body["f"]
    lips = np.unique(f[labels == names.index("lips")])
    inner = np.unique(f[labels == names.index("mouth_interior")])
    lv = v[lips]
    mid = np.abs(lv[:, 0]) < 0.006
    split_y = float(np.median(lv[mid, 1]))                 # where the lips meet
    half_w = 0.8 * float(np.abs(lv[:, 0]).max())           # a little inside the corners
    # just in front of the lips' inner (mouth_interior) surfaces around the split and behind
    # the lips themselves: hidden while the lips touch, shown as soon as they part
    iv = v[inner]
    band = (np.abs(iv[:, 0]) < 0.006) & (np.abs(iv[:, 1] - split_y) < 0.012)
    z_front = float(np.percentile(iv[band, 2], 98)) + 0.0008   # clear of them: no z-fighting
    z_front = min(z_front, float(lv[mid, 2].min()) - 0.0004)
    depth = 0.55 * half_w
    up_v, up_f = _band(half_w, z_front, depth, split_y + 0.010, split_y - 0.003)
    lo_v, lo_f = _band(half_w * 0.94, z_front - 0.002, depth, split_y - 0.001, split_y - 0.010)
    new_v = np.concatenate([up_v, lo_v])
    n_up, V = len(up_v), len(v)

    def nearest(points, pool):
        d = ((points[:, None, :] - v[pool][None]) ** 2).sum(-1)
        return pool[d.argmin(1)]

    mouth = np.concatenate([lips, inner])
    upper_pool = mouth[v[mouth, 1] > split_y + 0.002]
    lower_pool = mouth[v[mouth, 1] < split_y - 0.002]
    src = np.concatenate([nearest(up_v, upper_pool), nearest(lo_v, lower_pool)])
    shapedirs = body["shapedirs"][src].copy()
    # expressions move each band rigidly by the MEAN motion of its half of the mouth: fitted
    # photos drive the lips hard (smiles, asymmetric corners), and teeth copied vertex by
    # vertex would shear apart or fall behind the lips they should sit in
    e = slice(EXPR_OFFSET, EXPR_OFFSET + len(ARKIT52))
    shapedirs[:n_up, :, e] = body["shapedirs"][upper_pool][:, :, e].mean(0)
    shapedirs[n_up:, :, e] = body["shapedirs"][lower_pool][:, :, e].mean(0)
    out = dict(body)
    out["v_template"] = np.concatenate([v, new_v]).astype(np.float32)
    out["f"] = np.concatenate([f, up_f + V, lo_f + V + n_up]).astype(np.int32)
    out["shapedirs"] = np.concatenate([body["shapedirs"], shapedirs]).astype(np.float32)
    out["posedirs"] = np.concatenate(
        [body["posedirs"], np.zeros((len(new_v),) + body["posedirs"].shape[1:], np.float32)])
    out["weights"] = np.concatenate([body["weights"], body["weights"][src]]).astype(np.float32)
    out["J_regressor"] = np.concatenate(
        [body["J_regressor"], np.zeros((body["J_regressor"].shape[0], len(new_v)), np.float32)], 1)
    new_parts = dict(parts)
    new_parts["face_labels"] = np.concatenate(
        [labels, np.full(len(up_f) + len(lo_f), teeth_id, labels.dtype)])
    return out, new_parts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--body", type=Path, default=ROOT / "models" / "body" / "anny_smplx.npz")
    a = ap.parse_args()
    parts_path = a.body.with_name(a.body.stem + "_parts.npz")
    with np.load(a.body, allow_pickle=False) as z:
        body = {k: z[k] for k in z.files}
    with np.load(parts_path, allow_pickle=False) as z:
        parts = {k: z[k] for k in z.files}
    body2, parts2 = add_teeth(body, parts)
    if body2 is body:
        print(f"{a.body} already has teeth")
        return
    for path, data in ((a.body, body2), (parts_path, parts2)):
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez_compressed(tmp, **data)
        tmp.replace(path)
    added = len(body2["v_template"]) - len(body["v_template"])
    print(f"added {added} teeth vertices, {len(body2['f']) - len(body['f'])} faces to {a.body}")


if __name__ == "__main__":
    main()
