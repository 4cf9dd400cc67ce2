"""Pose images in the OpenPose / DWPose drawing convention the pose-conditioned video models were
trained on (ControlNet OpenPose, Wan 2.2 Animate's pose video, VACE / Fun-Control pose input).

The convention (written here from its description, colours in RGB):
- body: 18 points in COCO order (nose, neck, right arm, left arm, right leg, left leg, eyes,
  ears; the neck is the shoulders' midpoint), 17 limbs drawn as filled ellipses in 60 % of the
  limb's colour, then every point as a disc in its full colour (18 colours around the hue circle
  from red);
- hands: 21 points each, 20 edges as lines whose colour walks the HSV hue circle (edge i has hue
  i / 20), then the joints as blue discs;
- face: 68 points as white dots (optional).
Widths follow the image size the way each model's own renderer does: OpenPose / DWPose draw at a
512-pixel short side (limbs and discs 4 px, hand lines 2 px, face dots 3 px) and the picture is
scaled to the output, so here the widths scale with min(H, W) / 512; Wan Animate's own
preprocessing draws at the output size with limbs max(min(H, W) // 200 - 1, 1) wide, hand lines
and discs half that, plus its two toe limbs (ankle -> toe).
"""
from __future__ import annotations

import colorsys
from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import VloggerError
from .keypoints import PoseKeypoints

# limbs as pairs of 0-based body points, in the order (and colour order) the convention draws them
BODY_LIMBS = [(1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11),
              (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17)]
BODY_COLORS = [(255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0),
               (85, 255, 0), (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255),
               (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255), (170, 0, 255),
               (255, 0, 255), (255, 0, 170), (255, 0, 85)]
LIMB_SHADE = 0.6                               # limbs are drawn in 60 % of their colour
# Wan Animate's variant: points 18 / 19 = left / right toe, limbs left ankle -> toe, right ankle -> toe
TOE_LIMBS = [(13, 18), (10, 19)]
TOE_COLORS = [(200, 200, 0), (100, 100, 0)]
HAND_EDGES = [(0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (0, 9), (9, 10),
              (10, 11), (11, 12), (0, 13), (13, 14), (14, 15), (15, 16), (0, 17), (17, 18),
              (18, 19), (19, 20)]
HAND_EDGE_COLORS = [tuple(int(c * 255) for c in colorsys.hsv_to_rgb(i / len(HAND_EDGES), 1.0, 1.0))
                    for i in range(len(HAND_EDGES))]
HAND_JOINT_COLOR = (0, 0, 255)
FACE_COLOR = (255, 255, 255)
VARIANTS = ("openpose", "wan_animate")
ORDERS = ("RGB", "BGR")


@dataclass(frozen=True)
class PoseStyle:
    body: bool = True
    hands: bool = True
    face: bool = False
    variant: str = "openpose"        # "openpose" (DWPose / ControlNet) or "wan_animate"
    order: str = "RGB"               # channel order the target model expects

    def check(self) -> "PoseStyle":
        if self.variant not in VARIANTS:
            raise VloggerError(f"unknown pose style {self.variant!r}", "variant", f"use one of {VARIANTS}")
        if self.order not in ORDERS:
            raise VloggerError(f"unknown channel order {self.order!r}", "order", f"use one of {ORDERS}")
        return self


@dataclass(frozen=True)
class Widths:
    limb: int            # half-width of a limb's ellipse
    joint: int           # radius of a body point's disc
    hand_line: int
    hand_joint: int
    face_dot: int


def widths(style: PoseStyle, width: int, height: int) -> Widths:
    short = min(width, height)
    if style.variant == "wan_animate":
        limb = max(short // 200 - 1, 1)
        hand = max(limb // 2, 1)
        return Widths(limb, limb, hand, hand, hand)
    s = short / 512
    r = lambda px: max(1, int(round(px * s)))  # noqa: E731
    return Widths(r(4), r(4), r(2), r(4), r(3))


def _pt(p) -> tuple[int, int]:
    return int(p[0]), int(p[1])


def _limb(canvas, a, b, half_width: int, color) -> None:
    (x0, y0), (x1, y1) = a[:2], b[:2]
    length = float(np.hypot(x1 - x0, y1 - y0))
    angle = int(np.degrees(np.arctan2(y0 - y1, x0 - x1)))
    poly = cv2.ellipse2Poly((int((x0 + x1) / 2), int((y0 + y1) / 2)), (int(length / 2), half_width),
                            angle, 0, 360, 1)
    cv2.fillConvexPoly(canvas, poly, tuple(int(c * LIMB_SHADE) for c in color))


def draw_pose(kp: PoseKeypoints, frame: int, style: PoseStyle = PoseStyle()) -> np.ndarray:
    """One frame's pose image [H,W,3] uint8 on black."""
    style.check()
    canvas = np.zeros((kp.height, kp.width, 3), np.uint8)
    w = widths(style, kp.width, kp.height)
    if style.body:
        pts = kp.body[frame]
        limbs, colors = list(BODY_LIMBS), list(BODY_COLORS[:len(BODY_LIMBS)])
        point_colors = list(BODY_COLORS)
        if style.variant == "wan_animate":
            pts = np.concatenate([pts, kp.toes[frame]], 0)
            limbs += TOE_LIMBS
            colors += TOE_COLORS
            point_colors += TOE_COLORS
        for (i, j), c in zip(limbs, colors):
            if pts[i, 2] > 0 and pts[j, 2] > 0:
                _limb(canvas, pts[i], pts[j], w.limb, c)
        for p, c in zip(pts, point_colors):
            if p[2] > 0:
                cv2.circle(canvas, _pt(p), w.joint, c, thickness=-1)
    if style.hands:
        for hand in kp.hands[frame]:
            for (i, j), c in zip(HAND_EDGES, HAND_EDGE_COLORS):
                if hand[i, 2] > 0 and hand[j, 2] > 0:
                    cv2.line(canvas, _pt(hand[i]), _pt(hand[j]), c, thickness=w.hand_line)
            for p in hand:
                if p[2] > 0:
                    cv2.circle(canvas, _pt(p), w.hand_joint, HAND_JOINT_COLOR, thickness=-1)
    if style.face:
        for p in kp.face[frame]:
            if p[2] > 0:
                cv2.circle(canvas, _pt(p), w.face_dot, FACE_COLOR, thickness=-1)
    return canvas[..., ::-1].copy() if style.order == "BGR" else canvas


def draw_pose_video(kp: PoseKeypoints, style: PoseStyle = PoseStyle()) -> np.ndarray:
    """[N,H,W,3] float32 0..1 (ComfyUI's IMAGE layout) of every frame."""
    out = np.empty((len(kp), kp.height, kp.width, 3), np.float32)
    for i in range(len(kp)):
        out[i] = draw_pose(kp, i, style)
    out *= 1 / 255
    return out
