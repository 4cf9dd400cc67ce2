"""2D keypoints of the posed body in the OpenPose / DWPose layouts, as a detector would report them.

The points come from the posed 3D body of each frame exactly as the default renderer poses it
(`TalkingVideoRenderer`: the closed-mouth rest state, the sealed lips), seen through the
renderer's camera (the fitted camera at the output size), so the drawn skeleton lies on the
person in the default renderer's frames:
- body (18, COCO order as OpenPose draws it): nose = iBUG 30, eyes = centres of the iBUG eye
  contours, ears = a vertex in the middle of each ear part, neck = the shoulders' midpoint, the
  rest SMPL-X joints; plus the two toe points of Wan Animate's variant (SMPL-X `*_foot`);
- hands (21 per hand, OpenPose order: wrist, then thumb / index / middle / ring / pinky from base
  to tip): SMPL-X's finger joints plus a fingertip vertex per finger;
- face (68, iBUG order): mediapipe's face-mesh points on the mesh (the shipped body's parts
  file places all 478) through detect.MP_FOR_IBUG68; bodies without them give iBUG 17..67 (the
  SMPL-X static landmarks) and no jaw contour.

A point is dropped (visible 0) the way a detector drops it: outside the frame, or hidden. Surface
points (face, nose, eyes, ears, fingertips) use the rasterizer's vertex visibility; joints lie
inside the body, so a joint is hidden when the surface in front of it at its pixel is nearer
than the limb's own thickness (JOINT_DEPTH_MARGIN), e.g. a wrist behind the torso.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
import torch

from ..body.detect import MP_FOR_IBUG68
from ..body.model import IBUG_STATIC
from ..motion.params import SMPLX_INDEX
from ..render import controls, rasterizer
from ..render.talking_video import TalkingVideoRenderer

BODY_NAMES = ["nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder",
              "left_elbow", "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip",
              "left_knee", "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear"]
TOE_NAMES = ["left_toe", "right_toe"]          # Wan Animate's points 18 and 19
BODY_JOINTS = {n: n for n in BODY_NAMES if n not in ("nose", "neck", "right_eye", "left_eye",
                                                     "right_ear", "left_ear")}
TOE_JOINTS = {"left_toe": "left_foot", "right_toe": "right_foot"}
FINGERS = ["thumb", "index", "middle", "ring", "pinky"]
HAND_SIDES = ["left", "right"]                  # hands[:, 0] is the person's left hand
# how far (m) the surface in front of a joint may be before the joint counts as hidden
JOINT_DEPTH_MARGIN = {"shoulder": 0.10, "elbow": 0.07, "wrist": 0.05, "hip": 0.15, "knee": 0.08,
                      "ankle": 0.06, "foot": 0.06, "finger": 0.025}
VISIBILITY_SIDE = 320     # long side of the occlusion raster (pixels)
EAR_SEEN = 0.1            # an ear is seen when this share of its part's vertices is visible


@dataclass
class PoseKeypoints:
    """Keypoints of N frames in pixels of a width x height image (x, y, visible 0/1)."""
    body: np.ndarray          # [N,18,3]
    toes: np.ndarray          # [N,2,3]  left, right
    hands: np.ndarray         # [N,2,21,3]  left, right
    face: np.ndarray          # [N,68,3]
    width: int
    height: int

    def __len__(self) -> int:
        return len(self.body)


def posed_frames(renderer: TalkingVideoRenderer, motion, start: int, stop: int):
    """(vertices [n,V,3], joints [n,55,3]) of frames start..stop in world coordinates, posed as
    the default renderer poses them (motion None: the photo's own pose, one frame)."""
    body = renderer.body
    if motion is None:
        args = body.frame_pose_args(renderer.fit, None, 0, 1)
    else:
        m = renderer.sealed(motion, start, stop)
        args = body.frame_pose_args(renderer.rest_fit, m, 0, m.num_frames)
    with torch.no_grad():
        out = body.forward(*args)
    return out["vertices"].cpu(), out["joints"].cpu()


def _margin(joint: str) -> float:
    for key, m in JOINT_DEPTH_MARGIN.items():
        if key in joint:
            return m
    return JOINT_DEPTH_MARGIN["finger"]


class KeypointRig:
    """What is fixed per body: which vertices give the ears and fingertips, where the face points
    sit on the mesh. Build once, then `keypoints(renderer, motion, start, stop)`."""

    def __init__(self, body):
        self.body = body
        faces = np.asarray(body.faces, np.int64)
        rest = body.template_vertices().cpu().numpy()
        W = body.smplx.lbs_weights.detach().cpu().numpy()
        owner = W.argmax(1)
        J = (body.smplx.J_regressor @ body.smplx.v_template).detach().cpu().numpy()
        # fingertips: the vertex of each last finger segment farthest along the segment
        self.tips = {}
        for side in HAND_SIDES:
            for f in FINGERS:
                j2, j3 = SMPLX_INDEX[f"{side}_{f}2"], SMPLX_INDEX[f"{side}_{f}3"]
                cand = np.nonzero(owner == j3)[0]
                d = (J[j3] - J[j2]) / max(1e-9, np.linalg.norm(J[j3] - J[j2]))
                self.tips[(side, f)] = int(cand[np.argmax((rest[cand] - J[j3]) @ d)])
        # ears: the vertex nearest the middle of each side's ear part (x > 0 is the left side)
        self.ears = {}
        if "ears" in body.part_names:
            ear_tri = np.nonzero(body.face_labels == body.part_id("ears"))[0]
            ear_v = np.unique(faces[ear_tri])
            for side, sgn in (("left", 1.0), ("right", -1.0)):
                vs = ear_v[sgn * rest[ear_v, 0] > 0]
                if len(vs):
                    c = rest[vs].mean(0)
                    self.ears[side] = (vs, int(vs[np.argmin(np.linalg.norm(rest[vs] - c, axis=1))]))
        # face points: (triangle ids [68], barycentrics [68,3], which iBUG points exist [68])
        meta = body.meta
        if "mp_faces_idx" in meta and len(meta["mp_faces_idx"]) >= 478:
            idx = np.asarray(MP_FOR_IBUG68)
            self.face_tri = np.asarray(meta["mp_faces_idx"], np.int64)[idx]
            self.face_bary = np.asarray(meta["mp_bary"], np.float64)[idx]
            self.face_has = np.ones(68, bool)
        else:
            tri = body.smplx.lmk_faces_idx.cpu().numpy().astype(np.int64)
            bary = body.smplx.lmk_bary_coords.cpu().numpy().astype(np.float64)
            self.face_tri = np.zeros(68, np.int64)
            self.face_bary = np.full((68, 3), 1 / 3)
            self.face_has = np.zeros(68, bool)
            n = min(len(tri), len(IBUG_STATIC))
            self.face_tri[IBUG_STATIC[:n]] = tri[:n]
            self.face_bary[IBUG_STATIC[:n]] = bary[:n]
            self.face_has[IBUG_STATIC[:n]] = True
        self.faces = faces

    def keypoints(self, renderer: TalkingVideoRenderer, motion, start: int = 0,
                  stop: int | None = None) -> PoseKeypoints:
        stop = (1 if motion is None else motion.num_frames) if stop is None else stop
        verts, joints = posed_frames(renderer, motion, start, stop)
        return self.from_posed(verts, joints, renderer.camera)

    def from_posed(self, verts: torch.Tensor, joints: torch.Tensor, camera) -> PoseKeypoints:
        """Keypoints of posed vertices [n,V,3] and joints [n,55,3] seen by `camera`."""
        W, H = camera.width, camera.height
        pv = controls.project(camera, verts)                      # [n,V,3] x, y, z
        pj = controls.project(camera, joints)
        # occlusion is decided on a raster of at most VISIBILITY_SIDE pixels (a detector's
        # "hidden" needs no more detail; the positions stay at full resolution)
        s = min(1.0, VISIBILITY_SIDE / max(W, H))
        vw, vh = max(1, round(W * s)), max(1, round(H * s))
        vcam = camera.resized(vw, vh) if s < 1 else camera
        qv = controls.project(vcam, verts) if s < 1 else pv
        qj = controls.project(vcam, joints) if s < 1 else pj
        faces = self.faces.astype(np.int32)
        frags = rasterizer.rasterize(qv, faces, vw, vh, cull_backfaces=controls.CULL_BODY_BACKFACES)
        vis = rasterizer.vertex_visibility(qv, faces, frags)
        n = len(pv)
        rows = np.arange(n)

        def inside(xy):
            return (xy[..., 0] >= 0) & (xy[..., 0] < W) & (xy[..., 1] >= 0) & (xy[..., 1] < H)

        def joint_point(name: str) -> np.ndarray:        # [n,3]
            j = SMPLX_INDEX[name]
            p, q = pj[:, j], qj[:, j]
            ok = inside(p)
            px = np.clip(q[:, 0].astype(int), 0, vw - 1)
            py = np.clip(q[:, 1].astype(int), 0, vh - 1)
            front = frags.depth[rows, py, px]
            ok &= ~(front < p[:, 2] - _margin(name))            # inf (background) never hides
            return np.stack([p[:, 0], p[:, 1], ok.astype(np.float32)], -1)

        def vertex_point(v: int) -> np.ndarray:
            p = pv[:, v]
            return np.stack([p[:, 0], p[:, 1], (inside(p) & vis[:, v]).astype(np.float32)], -1)

        # face points: barycentric on their triangles; seen when 2 of the 3 corners are
        tri = self.faces[self.face_tri]                             # [68,3]
        fxy = np.einsum("lk,nlkc->nlc", self.face_bary, pv[:, tri, :2])
        fseen = (vis[:, tri].sum(-1) >= 2) & inside(fxy) & self.face_has[None]
        face = np.concatenate([fxy, fseen[..., None].astype(np.float32)], -1)

        body = np.zeros((n, 18, 3), np.float32)
        for i, name in enumerate(BODY_NAMES):
            if name in BODY_JOINTS:
                body[:, i] = joint_point(BODY_JOINTS[name])
        body[:, 0] = face[:, 30]
        for i, eye in ((14, range(36, 42)), (15, range(42, 48))):
            pts = face[:, list(eye)]
            body[:, i, :2] = pts[..., :2].mean(1)
            body[:, i, 2] = (pts[..., 2].mean(1) >= 0.5) & inside(body[:, i, :2])
        for i, side in ((16, "right"), (17, "left")):
            if side in self.ears:
                vs, centre = self.ears[side]
                body[:, i] = vertex_point(centre)
                body[:, i, 2] = (vis[:, vs].mean(1) >= EAR_SEEN) & inside(body[:, i, :2])
        sh = body[:, [2, 5]]
        body[:, 1, :2] = sh[..., :2].mean(1)
        body[:, 1, 2] = sh[:, 0, 2] * sh[:, 1, 2] * inside(body[:, 1, :2])
        toes = np.stack([joint_point(TOE_JOINTS[t]) for t in TOE_NAMES], 1)

        hands = np.zeros((n, 2, 21, 3), np.float32)
        for h, side in enumerate(HAND_SIDES):
            hands[:, h, 0] = joint_point(f"{side}_wrist")
            for k, f in enumerate(FINGERS):
                for s in range(3):
                    hands[:, h, 1 + 4 * k + s] = joint_point(f"{side}_{f}{s + 1}")
                hands[:, h, 4 + 4 * k] = vertex_point(self.tips[(side, f)])
        return PoseKeypoints(body, toes, hands, face.astype(np.float32), W, H)


_RIGS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def rig_for(body) -> KeypointRig:
    """The body's KeypointRig, built once per body object."""
    if body not in _RIGS:
        _RIGS[body] = KeypointRig(body)
    return _RIGS[body]
