"""Lip metrics of issue 14, measured on OUTPUT frames by a detector that knows nothing of how
they were made (the pack's default landmark detector, vlogger_core/body/detect.py "landmarks":
mediapipe's face mesh run on LiteRT).

- `seen_lip_gap(face)`: per frame, the inner-lip gap (mean of three upper/lower inner-lip point
  pairs of the 478-point mesh) divided by the mouth width (corner to corner); NaN without a face.
- `lip_gap_r`: Pearson r between that gap and the motion's mouth opening.
- `closed_fraction`: of the frames selected, the fraction whose gap is under 10 % of the clip's
  95th-percentile gap.
- `bilabial_frames` / `pause_frames`: frames whose centre lies in a p/b/m phoneme / in a pause of
  300 ms or more (phoneme timeline of the TTS that spoke the clip).
"""
from __future__ import annotations

import numpy as np

from vlogger_core.audio.tts import PhonemeTimeline, is_pause
from vlogger_core.body.detect import detect

# mediapipe face-mesh inner lip pairs (upper, lower): the middle and either side of it
INNER_LIP_PAIRS = ((13, 14), (82, 87), (312, 317))
MOUTH_CORNERS = (61, 291)
BILABIALS = ("p", "b", "m")
MIN_PAUSE_S = 0.3
CLOSED_FRACTION_OF_P95 = 0.10


def detect_faces(frames_uint8: np.ndarray) -> np.ndarray:
    """[T,478,2] face-mesh points of video frames [T,H,W,3] uint8 (tracking mode, lips refined)."""
    return detect(frames_uint8, tracking=True, parts=("face",), refine_face=True,
                  backend="landmarks").face


def seen_lip_gap(face: np.ndarray) -> np.ndarray:
    """[T] inner-lip gap / mouth width of face-mesh points [T,478,2] (NaN where no face)."""
    gap = np.mean([np.linalg.norm(face[:, a] - face[:, b], axis=-1) for a, b in INNER_LIP_PAIRS], 0)
    width = np.linalg.norm(face[:, MOUTH_CORNERS[0]] - face[:, MOUTH_CORNERS[1]], axis=-1)
    return gap / np.maximum(width, 1e-6)


EYE_OUTER = (33, 263)
# espeak phonemes whose lips round (o, u, w) and spread (i, e)
ROUNDED = ("u:", "U", "o:", "O", "O:", "0", "oU", "aU", "w", "u", "OI")
SPREAD = ("i:", "i", "I", "e", "eI", "E", "aI")


def seen_mouth_width(face: np.ndarray) -> np.ndarray:
    """[T] mouth width (corner to corner) / outer-eye distance of face-mesh points [T,478,2]:
    how far the lip corners stretch or round, independent of the face's size in the frame."""
    width = np.linalg.norm(face[:, MOUTH_CORNERS[0]] - face[:, MOUTH_CORNERS[1]], axis=-1)
    eyes = np.linalg.norm(face[:, EYE_OUTER[0]] - face[:, EYE_OUTER[1]], axis=-1)
    return width / np.maximum(eyes, 1e-6)


def rounded_width_ratio(width: np.ndarray, timeline: PhonemeTimeline, fps: float) -> tuple[float, int, int]:
    """Median seen mouth width on rounded-vowel frames over that on spread-vowel frames (< 1: the
    corners round on o / u / w), and the two frame counts."""
    ph = timeline.at_frames(fps, len(width))
    r = np.array([p in ROUNDED for p in ph]) & np.isfinite(width)
    s = np.array([p in SPREAD for p in ph]) & np.isfinite(width)
    if not r.any() or not s.any():
        return float("nan"), int(r.sum()), int(s.sum())
    return float(np.median(width[r]) / np.median(width[s])), int(r.sum()), int(s.sum())


def photo_lip_gap(photo_uint8: np.ndarray) -> float:
    """The same gap on one photo [H,W,3] uint8 (static mode): the sanity line."""
    face = detect(photo_uint8[None], tracking=False, parts=("face",), refine_face=True,
                  backend="landmarks").face
    return float(seen_lip_gap(face)[0])


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok] - a[ok].mean(), b[ok] - b[ok].mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 0 else float("nan")


def bilabial_frames(timeline: PhonemeTimeline, fps: float, n: int) -> np.ndarray:
    """[n] bool: the frame's centre lies in a p, b or m."""
    return np.array([p in BILABIALS for p in timeline.at_frames(fps, n)])


def pause_intervals(timeline: PhonemeTimeline, min_s: float = MIN_PAUSE_S) -> list[tuple[float, float]]:
    """(start, end) of every run of pause phonemes lasting min_s or more."""
    out, start, end = [], None, None
    for p, s, e in zip(timeline.phonemes, timeline.starts, timeline.ends):
        if is_pause(p):
            start = s if start is None else start
            end = e
        else:
            if start is not None and end - start >= min_s:
                out.append((float(start), float(end)))
            start = None
    if start is not None and end - start >= min_s:
        out.append((float(start), float(end)))
    return out


def pause_frames(timeline: PhonemeTimeline, fps: float, n: int, min_s: float = MIN_PAUSE_S) -> np.ndarray:
    """[n] bool: the frame's centre lies in a pause of min_s or more."""
    t = (np.arange(n) + 0.5) / fps
    sel = np.zeros(n, bool)
    for a, b in pause_intervals(timeline, min_s):
        sel |= (t >= a) & (t < b)
    return sel


def closed_threshold(gap: np.ndarray) -> float:
    """10 % of the clip's 95th-percentile gap."""
    return CLOSED_FRACTION_OF_P95 * float(np.nanpercentile(gap, 95))


def closed_fraction(gap: np.ndarray, select: np.ndarray, threshold: float) -> float:
    """Of the selected frames with a face, the fraction whose gap is under `threshold`."""
    g = gap[select & np.isfinite(gap)]
    return float((g < threshold).mean()) if len(g) else float("nan")
