"""The one body-fitting engine: 2D targets (body/detect.py) -> body parameters.

One objective, for P independent fits of T frames each (P > 1: the focal lengths of a FOV scan):
  data   per frame with a face: the weighted mean squared reprojection error of the body's face
         landmarks (+ eyelid points, when given) + 0.5 x that of its joints (fingers too, for a
         seen hand), in units of the face's size; averaged over those frames
  priors shape, free-joint rotations (relative to the base pose) and expression magnitudes
  smooth frame-to-frame squared differences of pose, expression, orientation, translation
minimised by Adam in stages (each frees some parameters), with the expression clamped to 0..1
(ARKit weights) and the body kept in front of the camera after every step.

Its three uses keep the weights, learning rates and iteration counts each was tuned with:
- fit_image / fit_photo / estimate_fov: one photo (batched over focal lengths for the FOV scan);
- fit_clip: a clip: shared shape; per-frame orientation, translation, pose and expression with
  smoothness, warm-started from one frame's photo fit;
- track_frames: per-frame tracking from one frame's fit (camera, shape, orientation fixed;
  head/neck/jaw, expression and translation per frame), in chunks.
"""
from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from ..callbacks import Interrupt, check
from ..errors import VloggerError
from ..motion.params import (
    SMPLX_INDEX,
    axis_angle_to_matrix,
    expression_names,
    matrix_to_axis_angle,
)
from ..threads import torch_threads
from .camera import PerspectiveCamera
from .detect import MP_EYELIDS, MP_HAND_JOINTS, MP_POSE_JOINTS, MP_STATIC, Landmarks


class FitInputError(VloggerError):
    """An image, video or setting the fit cannot use (`arg` names it, `fix` says what to do)."""


DEFAULT_FOV = 45.0   # diagonal degrees when not overridden: a typical portrait lens
# Joints whose local rotation the fit may change (upper body + head); arms start hanging down.
FIT_JOINTS = ["spine1", "spine2", "spine3", "neck", "head", "left_collar", "right_collar",
              "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist",
              "right_wrist", "jaw"]
FINGERS = [f"{f}{k}" for f in ("index", "middle", "pinky", "ring", "thumb") for k in (1, 2, 3)]
ARMS_DOWN_DEG = 72.0
PHOTO_ITERS = (40, 100)   # (placement, everything) Adam iterations of a photo fit
# FOV estimation (shoulders visible): the fit is run at each of these diagonal FOVs and the
# reprojection loss plus a weak prior towards DEFAULT_FOV is minimised over them (a parabola in
# log-FOV through the best three, then a final fit there). Perspective is a weak cue in one photo
# (the face sits nearer than the shoulders, the nose nearer than the ears): a joint gradient
# descent on the focal length stalls (tried), the scan does not. Coarse: on synthetic landmarks
# 20 / 45 / 70 degree cameras come out ordered, not exact.
FOV_GRID = (20.0, 32.0, 50.0, 80.0)
FOV_PRIOR = 4e-4
# The body's iBUG eyelid landmarks barely move with its blink shapes (measured: 1.5 mm of the
# 12.6 mm a blink moves the lid), so a clip's blinks are fitted on extra points: per eye the
# vertex a blink moves most (upper lid centre) and the lower-lid vertex it closes onto.
LID_WEIGHT = 1.0          # the lid term counts as much as the whole face term: apertures are few px
CLIP_EXPR_PRIOR = 1e-3    # per expression weight; 1e-4 lets unseen channels drift
TRACK_JOINTS = ["spine3", "neck", "head", "jaw"]
TRACK_CHUNK = 240         # frames per tracking optimisation
FRONT_Z = -0.05           # world z the body stays below: in front of the (front-facing) camera
PARAMETERS = ("betas", "orient", "transl", "pose", "expression")


@dataclass
class Smoothness:
    """Weights of the frame-to-frame squared differences (mean over frames of the summed squares)."""
    pose: float = 0.0           # free-joint axis-angles
    expression: float = 0.0
    orient: float = 0.0
    transl: float = 0.0         # metres


@dataclass
class FitOptions:
    """One use of the engine. stages: ((parameters of PARAMETERS, iterations, learning rate), ...),
    run one after another. free_joints: the joints whose rotation is fitted (the fingers of a hand
    the targets see join them). expr_prior None: 1e-3 for ARKit weights, 1e-2 for smplx's PCA.
    joint_norm: the joint term is divided by this count (None: the frame's seen body joints)."""
    stages: tuple
    free_joints: tuple = tuple(FIT_JOINTS)
    expr_prior: float | None = None
    joint_norm: int | None = None
    smooth: Smoothness = field(default_factory=Smoothness)


@dataclass
class Targets:
    """2D targets of T frames, in pixels; weight 0 where nothing was seen."""
    face: torch.Tensor          # [T,L,2] the body's face landmarks (iBUG 17..67)
    face_w: torch.Tensor        # [T,L]
    joints: torch.Tensor        # [T,J,2]
    joint_w: torch.Tensor       # [T,J]
    joint_names: list           # J SMPL-X joint names
    lid_vertices: list = field(default_factory=list)   # K body vertices (eyelid_vertices) ...
    lids: torch.Tensor | None = None                     # ... and their targets [T,K,2]

    @classmethod
    def from_frames(cls, frames: list, joint_names: list | None = None,
                    num_landmarks: int = len(MP_STATIC)) -> "Targets":
        """frames: per frame (face {landmark index: (x, y, w)}, joints {name: (x, y, w)}) as
        Landmarks.targets gives them, or None (no face). joint_names: the joints kept (None:
        every one a frame names)."""
        names = sorted({n for f in frames if f for n in f[1]}) if joint_names is None else list(joint_names)
        face = np.zeros((len(frames), num_landmarks, 3), np.float32)      # x, y, weight
        joints = np.zeros((len(frames), len(names), 3), np.float32)
        for t, f in enumerate(frames):
            if f is None:
                continue
            for k, xyw in f[0].items():
                face[t, k] = xyw
            for j, n in enumerate(names):
                if n in f[1]:
                    joints[t, j] = f[1][n]
        face, joints = torch.from_numpy(face), torch.from_numpy(joints)
        return cls(face[..., :2], face[..., 2], joints[..., :2], joints[..., 2], names)

    @classmethod
    def from_points(cls, face: np.ndarray) -> "Targets":
        """Face landmarks only [T,L,2] (NaN: no face in that frame), every point weighted 1."""
        ok = ~np.isnan(face[..., 0]).any(1)
        w = torch.from_numpy(ok.astype(np.float32))[:, None].expand(-1, face.shape[1]).contiguous()
        return cls(torch.from_numpy(np.nan_to_num(face)).float(), w, torch.zeros(len(face), 0, 2),
                   torch.zeros(len(face), 0), [])

    def __len__(self):
        return len(self.face)

    def slice(self, a: int, b: int) -> "Targets":
        return Targets(self.face[a:b], self.face_w[a:b], self.joints[a:b], self.joint_w[a:b],
                       self.joint_names, self.lid_vertices, None if self.lids is None else self.lids[a:b])

    def to(self, device) -> "Targets":
        """Own float32 copies on `device` (normal tensors even when made in inference mode)."""
        c = lambda x: None if x is None else x.to(device, torch.float32).clone()  # noqa: E731
        return Targets(c(self.face), c(self.face_w), c(self.joints), c(self.joint_w), self.joint_names,
                       self.lid_vertices, c(self.lids))

    def frame_ok(self) -> torch.Tensor:
        """[T] bool: frames with a face."""
        return self.face_w.sum(-1) > 0

    def hands(self) -> list[str]:
        """The sides whose fingers are targets."""
        return [s for s in ("left", "right") if f"{s}_index1" in self.joint_names]

    def body_joints(self) -> torch.Tensor:
        """[T] the number of seen joints that are not fingers."""
        body = torch.tensor([n.split("_", 1)[-1] not in FINGERS for n in self.joint_names], dtype=torch.bool,
                            device=self.joint_w.device)
        return ((self.joint_w > 0) & body).sum(-1)

    def face_size(self) -> float:
        """Mean distance of the seen face points from their frame's centre (at least 1 px)."""
        m = (self.face_w > 0).float()
        c = (self.face * m[..., None]).sum(1, keepdim=True) / m.sum(-1).clamp_min(1)[:, None, None]
        return float(((self.face - c).norm(dim=-1) * m).sum() / m.sum().clamp_min(1)) if m.any() else 1.0


@dataclass
class BodyFrames:
    """Body parameters of P fits of T frames each."""
    betas: torch.Tensor          # [P,S] shared by a fit's frames
    global_orient: torch.Tensor  # [P,T,3] axis-angle
    transl: torch.Tensor         # [P,T,3]
    poses: torch.Tensor          # [P,T,55,3,3] local joint rotations
    expression: torch.Tensor     # [P,T,E]

    @classmethod
    def repeat(cls, fit, P: int, T: int) -> "BodyFrames":
        """One fit's parameters (a ReferenceFit or anything with betas [S], global_orient [3],
        transl [3], reference_pose [55,3,3], expression [E]) for every fit and frame."""
        e = lambda x: x[None, None].expand(P, T, *x.shape)  # noqa: E731
        return cls(fit.betas[None].expand(P, -1), e(fit.global_orient), e(fit.transl),
                   e(fit.reference_pose), e(fit.expression))

    def select(self, p: int) -> "BodyFrames":
        return BodyFrames(*(x[p:p + 1] for x in (self.betas, self.global_orient, self.transl, self.poses,
                                                  self.expression)))

    def cpu(self) -> "BodyFrames":
        return BodyFrames(*(x.detach().cpu() for x in (self.betas, self.global_orient, self.transl,
                                                       self.poses, self.expression)))


@dataclass
class FitResult:
    body: BodyFrames
    loss: torch.Tensor           # [P] the objective at the end
    landmarks_px: torch.Tensor   # [P,T,L,2] the fitted face landmarks in pixels
    targets: Targets

    @property
    def error_px(self) -> torch.Tensor:
        """[P,T,L] pixel distance of each fitted face landmark to its target (meaningful where
        targets.face_w > 0)."""
        return (self.landmarks_px - self.targets.face.to(self.landmarks_px)).norm(dim=-1)

    def select(self, p: int) -> "FitResult":
        return FitResult(self.body.select(p), self.loss[p:p + 1], self.landmarks_px[p:p + 1], self.targets)


# ----------------------------------------------------------------------------- the engine
@contextmanager
def _fitting():
    """The fit is hundreds of tiny tensor ops: intra-op threads only add overhead, so one thread;
    gradients on even where the caller runs in inference / no-grad mode."""
    with torch_threads(1), torch.inference_mode(False), torch.enable_grad():
        yield


class _FaceGather:
    """The body's face landmarks from a few posed vertices (barycentric in the landmark triangles),
    plus `extra` vertices appended after them."""

    def __init__(self, body, extra=()):
        vid, self.w = body.landmark_vertex_weights()
        uniq, inv = torch.unique(vid.reshape(-1), return_inverse=True)
        self.inv, self.n = inv.reshape(-1, 3), len(uniq)
        self.vertices = torch.cat([uniq, torch.tensor(list(extra), dtype=torch.long, device=uniq.device)])

    def __call__(self, pts: torch.Tensor) -> torch.Tensor:
        """[..., K,3] posed self.vertices -> [..., L,3] landmarks."""
        return (pts[..., self.inv, :] * self.w[..., None]).sum(-2)


class _Objective:
    def __init__(self, body, camera: PerspectiveCamera, tg: Targets, base: torch.Tensor, free: list[str],
                 options: FitOptions, focals: list[float], P: int):
        dev = body.device
        f32 = dict(device=dev, dtype=torch.float32)
        self.body, self.tg, self.base, self.options, self.P, self.T = body, tg, base, options, P, len(tg)
        self.jidx = torch.tensor([SMPLX_INDEX[j] for j in free], device=dev, dtype=torch.long)
        self.jsel = torch.tensor([SMPLX_INDEX[n] for n in tg.joint_names], device=dev, dtype=torch.long)
        self.all_joints = bool(tg.hands())
        self.gather = _FaceGather(body, tg.lid_vertices if tg.lids is not None else ())
        self.Rc, self.tc = camera.rotation.to(**f32), camera.translation.to(**f32)
        self.c = camera.intrinsics().to(**f32)[:2, 2]
        self.f = torch.tensor(focals, **f32).reshape(-1, 1, 1, 1)     # [P,1,1,1]
        self.scale = 2.0 * max(1.0, tg.face_size())                     # pixel errors per face size
        self.ok = tg.frame_ok().to(**f32)
        self.n_ok = max(1, int(self.ok.sum()))
        seen = tg.body_joints().to(**f32).clamp_min(1.0)
        self.joint_norm = seen if options.joint_norm is None else float(options.joint_norm)
        self.expr_prior = options.expr_prior if options.expr_prior is not None else \
            (1e-3 if body.expression_set == "arkit52" else 1e-2)

    def project(self, p: torch.Tensor) -> torch.Tensor:
        """[P,T,K,3] world -> [P,T,K,2] pixels."""
        pc = p @ self.Rc.T + self.tc
        return pc[..., :2] / pc[..., 2:3].clamp_min(1e-3) * self.f + self.c

    def poses(self, delta: torch.Tensor) -> torch.Tensor:
        poses = self.base.expand(self.P, self.T, 55, 3, 3).clone()
        poses[:, :, self.jidx] = self.base[self.jidx] @ axis_angle_to_matrix(delta)
        return poses

    def __call__(self, p: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(loss [P], face landmarks [P,T,L,2] px, poses [P,T,55,3,3])."""
        P, T, tg, s = self.P, self.T, self.tg, self.scale
        poses = self.poses(p["pose"])
        flat = lambda x: x.reshape(P * T, *x.shape[2:])  # noqa: E731
        pts, joints = self.body.posed_points(self.gather.vertices, flat(p["betas"][:, None].expand(P, T, -1)),
                                             flat(p["orient"]), flat(p["transl"]), flat(poses),
                                             flat(p["expression"]), self.all_joints)
        pts, joints = pts.reshape(P, T, *pts.shape[1:]), joints.reshape(P, T, *joints.shape[1:])
        uv = self.project(self.gather(pts[:, :, :self.gather.n]))
        e_f = (tg.face_w * ((uv - tg.face) / s).pow(2).sum(-1)).sum(-1) / tg.face_w.sum(-1).clamp_min(1e-6)
        if tg.lids is not None:
            e_lid = ((self.project(pts[:, :, self.gather.n:]) - tg.lids) / s).pow(2).sum(-1).mean(-1)
            e_f = e_f + LID_WEIGHT * e_lid * self.ok
        e_j = (tg.joint_w * ((self.project(joints[:, :, self.jsel]) - tg.joints) / s).pow(2).sum(-1)).sum(-1)
        loss = (e_f + 0.5 * e_j / self.joint_norm).sum(-1) / self.n_ok
        loss = loss + 1e-3 * p["betas"].pow(2).sum(-1) + 2e-2 * p["pose"].pow(2).sum((-1, -2)).mean(-1)
        loss = loss + self.expr_prior * p["expression"].pow(2).sum(-1).mean(-1)
        if T > 1:
            dt = lambda x: (x[:, 1:] - x[:, :-1]).pow(2).flatten(2).sum(-1).mean(-1)  # noqa: E731
            sm = self.options.smooth
            for w, x in ((sm.pose, p["pose"]), (sm.expression, p["expression"]), (sm.orient, p["orient"]),
                         (sm.transl, p["transl"])):
                if w:
                    loss = loss + w * dt(x)
        return loss, uv, poses


def optimise(body, camera: PerspectiveCamera, targets: Targets, start: BodyFrames, options: FitOptions,
             base: torch.Tensor | None = None, focals: list[float] | None = None,
             interrupt: Interrupt = None) -> FitResult:
    """Fit P = len(start.betas) independent sets of T = len(targets) frames (shared targets), each
    through its own focal length (`focals`, default the camera's), from `start`. `base` [55,3,3]:
    the pose the free joints rotate from and their prior pulls to (None: the start pose, which is
    then the same in every frame)."""
    P = start.betas.shape[0]
    with _fitting():
        dev = body.device
        f32 = dict(device=dev, dtype=torch.float32)
        tg = targets.to(dev)
        sides = tg.hands()
        free = list(options.free_joints) + [f"{s}_{f}" for s in sides for f in FINGERS]
        jidx = [SMPLX_INDEX[j] for j in free]
        poses0 = start.poses.to(**f32)
        if base is None:
            base = poses0[0, 0].clone()
            delta = torch.zeros(P, len(tg), len(free), 3, **f32)
        else:
            base = base.to(**f32).clone()
            delta = matrix_to_axis_angle(base[jidx].transpose(-1, -2) @ poses0[:, :, jidx])
        p = {"betas": start.betas, "orient": start.global_orient, "transl": start.transl,
             "expression": start.expression}
        p = {k: v.to(**f32).clone() for k, v in p.items()}
        p["pose"] = delta.clone()
        for name in {n for names, _, _ in options.stages for n in names}:
            p[name].requires_grad_(True)
        objective = _Objective(body, camera, tg, base, free, options, focals or [camera.focal], P)
        arkit = body.expression_set == "arkit52"
        for names, iters, lr in options.stages:
            opt = torch.optim.Adam([p[n] for n in names], lr=lr)
            for _ in range(iters):
                check(interrupt)
                opt.zero_grad()
                loss, _, _ = objective(p)
                loss.sum().backward()
                opt.step()
                with torch.no_grad():
                    if arkit:
                        p["expression"].clamp_(0.0, 1.0)
                    p["transl"][..., 2].clamp_(max=FRONT_Z)
        with torch.no_grad():
            loss, uv, poses = objective(p)
        fitted = BodyFrames(p["betas"].detach(), p["orient"].detach(), p["transl"].detach(), poses,
                            p["expression"].detach())
        return FitResult(fitted, loss, uv, tg)


# ----------------------------------------------------------------------------- one photo
def rest_fit_pose(body) -> torch.Tensor:
    """[55,3,3] start pose: the body's rest pose with the arms hanging down at the sides."""
    aa = body.pose_mean.clone()
    aa[SMPLX_INDEX["left_shoulder"]] = torch.tensor([0, 0, -math.radians(ARMS_DOWN_DEG)])
    aa[SMPLX_INDEX["right_shoulder"]] = torch.tensor([0, 0, math.radians(ARMS_DOWN_DEG)])
    aa[SMPLX_INDEX["left_elbow"]] = torch.tensor([0, -0.15, 0])
    aa[SMPLX_INDEX["right_elbow"]] = torch.tensor([0, 0.15, 0])
    return axis_angle_to_matrix(aa.to(body.device))


def _photo_start(body, camera: PerspectiveCamera, targets: Targets, focals: list[float]) -> BodyFrames:
    """The rest-pose body facing the camera, per focal length: at the depth where its face has the
    targets' size, on the camera ray through their (weighted) centre."""
    dev = body.device
    f32 = dict(device=dev, dtype=torch.float32)
    base = rest_fit_pose(body).to(**f32)
    gather = _FaceGather(body)
    with torch.no_grad():
        pts, _ = body.posed_points(gather.vertices, torch.zeros(1, body.num_betas, **f32),
                                   torch.zeros(1, 3, **f32), torch.zeros(1, 3, **f32), base[None],
                                   torch.zeros(1, body.num_expression, **f32))
        lm = gather(pts[0])
        w, lt = targets.face_w[0].to(**f32), targets.face[0].to(**f32)
        seen = w > 0
        spread3 = (lm[seen, :2] - lm[seen, :2].mean(0)).norm(dim=1).mean()
        spread2 = (lt[seen] - lt[seen].mean(0)).norm(dim=1).mean().clamp_min(1.0)
        c2 = (lt * w[:, None]).sum(0) / w.sum()
        c3 = (lm * w[:, None]).sum(0) / w.sum()
        K, Rc, tc = camera.intrinsics().to(**f32), camera.rotation.to(**f32), camera.translation.to(**f32)
        transl = []
        for f in focals:
            depth = float(f * spread3 / spread2)
            ray = torch.tensor([(c2[0] - K[0, 2]) / f, (c2[1] - K[1, 2]) / f, 1.0], **f32) * depth
            transl.append(Rc.T @ (ray - tc) - c3)
    B = len(focals)
    return BodyFrames(torch.zeros(B, body.num_betas, **f32), torch.zeros(B, 1, 3, **f32),
                      torch.stack(transl)[:, None], base.expand(B, 1, 55, 3, 3),
                      torch.zeros(B, 1, body.num_expression, **f32))


def fit_image(body, camera: PerspectiveCamera, targets: Targets, free_pose: bool = True,
              iters: tuple[int, int] = PHOTO_ITERS, focals: list[float] | None = None,
              interrupt: Interrupt = None) -> FitResult:
    """One image (targets of one frame): the placement first (translation, orientation), then
    everything (free_pose; else placement + pose, at half the iterations). Batched over `focals`
    (default: the camera's): one independent fit per focal length for about the cost of one (the
    fit is dominated by per-op overhead)."""
    focals = list(focals or [camera.focal])
    with _fitting():
        start = _photo_start(body, camera, targets, focals)
    stages = [(("transl", "orient"), iters[0], 0.03),
              (PARAMETERS, iters[1], 0.02) if free_pose else (("transl", "orient", "pose"), iters[1] // 2, 0.01)]
    return optimise(body, camera, targets, start, FitOptions(tuple(stages)), focals=focals, interrupt=interrupt)


def estimate_fov(body, width: int, height: int, targets: Targets, iters: tuple[int, int] = PHOTO_ITERS,
                 interrupt: Interrupt = None) -> tuple[float, dict, FitResult]:
    """(diagonal FOV in degrees whose fit explains the targets best, the scan's scores, the fit at
    that FOV). The grid is fitted as one batch."""
    cams = [PerspectiveCamera(width, height, fov) for fov in FOV_GRID]
    batch = fit_image(body, cams[0], targets, True, iters, [c.focal for c in cams], interrupt)
    fits = {fov: batch.select(i) for i, fov in enumerate(FOV_GRID)}
    scores = {fov: float(fits[fov].loss[0]) + FOV_PRIOR * math.log(fov / DEFAULT_FOV) ** 2 for fov in FOV_GRID}
    grid = list(FOV_GRID)
    i = min(range(len(grid)), key=lambda k: scores[grid[k]])
    best, fit = grid[i], fits[grid[i]]
    if 0 < i < len(grid) - 1:           # refine: vertex of the parabola through 3 points
        x = [math.log(grid[j]) for j in (i - 1, i, i + 1)]
        y = [scores[grid[j]] for j in (i - 1, i, i + 1)]
        den = (x[0] - x[1]) * (x[0] - x[2]) * (x[1] - x[2])
        a = (x[2] * (y[1] - y[0]) + x[1] * (y[0] - y[2]) + x[0] * (y[2] - y[1])) / den
        b = (x[2] ** 2 * (y[0] - y[1]) + x[1] ** 2 * (y[2] - y[0]) + x[0] ** 2 * (y[1] - y[2])) / den
        if a > 0:
            vertex = round(math.exp(min(max(-b / (2 * a), x[0]), x[2])), 1)
            if abs(vertex - best) > 0.5:
                refit = fit_image(body, PerspectiveCamera(width, height, vertex), targets, True, iters,
                                  interrupt=interrupt)
                if float(refit.loss[0]) + FOV_PRIOR * math.log(vertex / DEFAULT_FOV) ** 2 < scores[best]:
                    best, fit = vertex, refit
    return float(best), {str(k): round(v, 7) for k, v in scores.items()}, fit


def fit_photo(body, width: int, height: int, targets: Targets, fov: float = 0.0, free_pose: bool = True,
              iters: tuple[int, int] = PHOTO_ITERS,
              interrupt: Interrupt = None) -> tuple[PerspectiveCamera, FitResult, dict | None]:
    """(camera, fit, FOV scan scores or None): at diagonal `fov`; fov 0: estimated by the scan when
    at least two body joints are seen (the perspective cue), else DEFAULT_FOV."""
    if not fov and int(targets.body_joints()[0]) >= 2:
        fov, scores, fit = estimate_fov(body, width, height, targets, iters, interrupt)
        return PerspectiveCamera(width, height, fov), fit, scores
    cam = PerspectiveCamera(width, height, fov or DEFAULT_FOV)
    return cam, fit_image(body, cam, targets, free_pose, iters, interrupt=interrupt), None


# ----------------------------------------------------------------------------- a clip
_LID_CACHE: dict = {}


def eyelid_vertices(body) -> list[tuple[int, int]]:
    """[(body vertex, mediapipe index)...]: per blink shape the upper-lid vertex and the lower-lid
    vertex it closes onto, each with its mediapipe lid point (empty when the body's expression
    set has no blink shapes)."""
    key = id(body)
    if key not in _LID_CACHE:
        names = expression_names(body.expression_set)
        m, out = body.smplx, []
        for shape, (mp_up, mp_low) in MP_EYELIDS.items():
            if shape not in names:
                continue
            d = m.expr_dirs[:, :, names.index(shape)]
            mag = d.norm(dim=-1)
            up = int(torch.argmax(mag))
            still = torch.nonzero(mag < 0.3 * mag[up]).ravel()
            low = int(still[torch.argmin((m.v_template[still] - m.v_template[up] - d[up]).norm(dim=-1))])
            out += [(up, mp_up), (low, mp_low)]
        _LID_CACHE[key] = out
    return _LID_CACHE[key]


def fit_clip(body, lms: Landmarks, width: int, height: int, iters: int = 120, fov: float = 0.0,
             interrupt: Interrupt = None, expr_prior: float = CLIP_EXPR_PRIOR
             ) -> tuple[PerspectiveCamera, FitResult, dict]:
    """All frames of a clip (mediapipe landmarks, at least one face) in one optimisation,
    warm-started from the full photo fit of the frame with a face nearest the middle, which also
    gives the clip's FOV (`fov` 0: estimated) and shape. Hands seen in >= 30% of the frames have
    their fingers fitted. `expr_prior`: the per-expression weight of the magnitude prior
    (dataset preparation keeps CLIP_EXPR_PRIOR; the reenactment passes a weaker one).
    Returns (camera, fit [P=1], info)."""
    t_start = time.time()
    T = len(lms)
    ok = np.flatnonzero(lms.face_found())
    a = int(ok[np.argmin(np.abs(ok - T // 2))])
    info: dict = {"anchor_frame": a}
    cam, first, scores = fit_photo(body, width, height, Targets.from_frames([lms.targets(a)]), fov,
                                   interrupt=interrupt)
    if scores is not None:
        info["fov_scores"] = scores
    info["fov_diag_deg"] = cam.fov_diag_deg
    sides = [s for s in ("left", "right") if lms.hand_found(s).mean() >= 0.3]
    names = list(MP_POSE_JOINTS.values()) + [f"{s}_{j}" for s in sides for j in MP_HAND_JOINTS.values()
                                             if j != "wrist"]
    tg = Targets.from_frames([lms.targets(t) for t in range(T)], names)
    lids = eyelid_vertices(body)
    tg.lid_vertices = [v for v, _ in lids]
    tg.lids = torch.from_numpy(np.nan_to_num(lms.face[:, [k for _, k in lids]]))
    b = first.body
    start = BodyFrames(b.betas, b.global_orient.expand(1, T, 3), b.transl.expand(1, T, 3),
                       b.poses.expand(1, T, 55, 3, 3), b.expression.expand(1, T, -1))
    depth = float((cam.rotation.to(b.transl) @ b.transl[0, 0] + cam.translation.to(b.transl))[2].abs().clamp_min(0.1))
    options = FitOptions(((("pose", "expression", "orient", "transl", "betas"), iters, 0.01),),
                         expr_prior=expr_prior, joint_norm=len(MP_POSE_JOINTS),
                         # translation smoothness relative to the body's distance
                         smooth=Smoothness(pose=0.2, expression=5e-4, orient=0.5, transl=0.5 / depth ** 2))
    info["warm_start_s"] = round(time.time() - t_start, 2)
    fit = optimise(body, cam, tg, start, options, base=rest_fit_pose(body), interrupt=interrupt)
    info["loss"], info["fit_s"] = float(fit.loss[0]), round(time.time() - t_start, 2)
    return cam, fit, info


# ----------------------------------------------------------------------------- tracking
def track_frames(body, fit0, face: np.ndarray, iters: int = 60, interrupt: Interrupt = None,
                 chunk: int = TRACK_CHUNK) -> BodyFrames:
    """Per-frame body parameters [P=1,T] from face landmarks [T,51,2] (NaN: no face), started from
    one frame's fit `fit0` (a ReferenceFit) whose camera, shape and orientation stay fixed:
    head/neck/jaw rotations, expression and translation per frame, with frame-to-frame
    smoothness, `chunk` frames per optimisation."""
    targets = Targets.from_points(face)
    options = FitOptions(((("pose", "transl", "expression"), iters, 0.02),), free_joints=tuple(TRACK_JOINTS),
                         smooth=Smoothness(pose=0.5, expression=0.05, transl=20.0))
    parts = []
    for a in range(0, len(targets), chunk):
        tg = targets.slice(a, a + chunk)
        parts.append(optimise(body, fit0.camera, tg, BodyFrames.repeat(fit0, 1, len(tg)), options,
                              interrupt=interrupt).body.cpu())
    return BodyFrames(parts[0].betas, *(torch.cat([getattr(q, k) for q in parts], 1)
                                        for k in ("global_orient", "transl", "poses", "expression")))
