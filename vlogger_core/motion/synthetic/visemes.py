"""espeak-ng phonemes -> mouth shapes (visemes) with coarticulation, for the synthetic corpus.

A viseme is a small vector of articulators (VISEME_KEYS). Targets are laid out on a 100 Hz grid
from the phoneme timeline, then smoothed (a Gaussian per articulator: ~35 ms for the jaw, tighter
for lip closure so p/b/m still reach a seal) - a cheap stand-in for dominance-function
coarticulation. Pauses relax to a closed mouth.
"""
from __future__ import annotations

import numpy as np

from ...audio.tts import PhonemeTimeline, is_pause

VISEME_KEYS = ["jaw", "close", "press", "funnel", "pucker", "stretch", "roll_lower", "upper_up",
               "tongue"]
_K = {k: i for i, k in enumerate(VISEME_KEYS)}


def _v(**kw) -> np.ndarray:
    out = np.zeros(len(VISEME_KEYS), np.float32)
    for k, val in kw.items():
        out[_K[k]] = val
    return out


# Classes (by espeak English mnemonic, stress/length marks stripped).
CLASSES = {
    "bilabial": (_v(jaw=0.03, close=1.0, press=0.5), {"p", "b", "m"}),
    "labiodental": (_v(jaw=0.1, roll_lower=0.7, upper_up=0.35), {"f", "v"}),
    "dental": (_v(jaw=0.18, tongue=0.25, stretch=0.1), {"T", "D"}),
    "alveolar": (_v(jaw=0.14, stretch=0.3), {"s", "z", "t", "d", "n", "l", "t#", "d#", "n-", "l-"}),
    "postalveolar": (_v(jaw=0.16, funnel=0.55, pucker=0.25), {"S", "Z", "tS", "dZ"}),
    "velar": (_v(jaw=0.25, stretch=0.1), {"k", "g", "N", "h", "x"}),
    "r": (_v(jaw=0.15, funnel=0.35, pucker=0.3), {"r", "r-", "3", "3:", "@r"}),
    "w": (_v(jaw=0.08, pucker=0.85, funnel=0.35), {"w", "W"}),
    "j": (_v(jaw=0.14, stretch=0.35), {"j"}),
    "open": (_v(jaw=0.7, stretch=0.1), {"a", "A", "A:", "aa", "a#", "0", "V", "aI", "A@", "a@"}),
    "open_round": (_v(jaw=0.6, funnel=0.35, pucker=0.2), {"aU", "O", "O:", "O@", "OI", "o@"}),
    "mid": (_v(jaw=0.42, stretch=0.3), {"E", "e", "e@", "eI", "E@", "E2", "3@"}),
    "schwa": (_v(jaw=0.3), {"@", "@2", "@5", "@L", "@@"}),
    "spread": (_v(jaw=0.2, stretch=0.6), {"i", "i:", "I", "I2", "I#", "i@", "i@3", "y"}),
    "round": (_v(jaw=0.4, funnel=0.55, pucker=0.45), {"o", "oU", "o:", "@U", "0U"}),
    "close_round": (_v(jaw=0.2, pucker=0.85, funnel=0.45), {"u", "u:", "U", "U@", "u@", "uu"}),
}
_LOOKUP = {ph: vec for vec, phs in CLASSES.values() for ph in phs}
REST = _v()
# Smoothing widths (seconds, Gaussian sigma) per articulator: lips seal fast, the jaw is heavy.
_SIGMA = _v(jaw=0.035, close=0.015, press=0.02, funnel=0.03, pucker=0.03, stretch=0.03,
            roll_lower=0.02, upper_up=0.025, tongue=0.02)
GRID_HZ = 100.0


def phoneme_viseme(ph: str) -> np.ndarray:
    """Target articulators for one espeak mnemonic (unknown consonants: a mild open shape)."""
    if is_pause(ph):
        return REST
    key = ph.replace("'", "").replace(",", "")
    for cand in (key, key.rstrip(":;"), key.rstrip("0123456789:;")):
        if cand in _LOOKUP:
            return _LOOKUP[cand]
    if cand and cand[0] in "aeiouAEIOU@03V":  # an unlisted vowel
        return CLASSES["mid"][0] if cand[0] not in "oOuU" else CLASSES["round"][0]
    return _v(jaw=0.15)


def lips_shut(ph: str) -> bool:
    """The lips meet for this phoneme: a bilabial (p, b, m) or a pause (the rest mouth is closed)."""
    return is_pause(ph) or bool(phoneme_viseme(ph)[_K["close"]] >= 1.0)


def _gauss_smooth(x: np.ndarray, sigma_samples: float) -> np.ndarray:
    r = max(1, int(3 * sigma_samples))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / max(sigma_samples, 1e-3)) ** 2)
    k /= k.sum()
    return np.convolve(np.pad(x, r, mode="edge"), k, mode="valid")


def viseme_track(timeline: PhonemeTimeline, duration: float, fps: float, num_frames: int,
                 strength: float = 1.0) -> np.ndarray:
    """[num_frames, len(VISEME_KEYS)] smoothed articulator targets at the video frame centres."""
    n_grid = int(np.ceil(duration * GRID_HZ)) + 1
    t = np.arange(n_grid) / GRID_HZ
    grid = np.zeros((n_grid, len(VISEME_KEYS)), np.float32)
    idx = np.searchsorted(timeline.starts, t, side="right") - 1
    for g, i in enumerate(idx):
        if 0 <= i < len(timeline.phonemes) and t[g] < timeline.ends[i]:
            grid[g] = phoneme_viseme(timeline.phonemes[i])
    for c in range(grid.shape[1]):
        grid[:, c] = _gauss_smooth(grid[:, c], _SIGMA[c] * GRID_HZ)
    grid[:, :] *= strength
    tf = (np.arange(num_frames) + 0.5) / fps
    return np.stack([np.interp(tf, t, grid[:, c]) for c in range(grid.shape[1])], 1).astype(np.float32)


def speaking_mask(timeline: PhonemeTimeline, fps: float, num_frames: int) -> np.ndarray:
    """1 where a non-pause phoneme is active at the frame centre."""
    return np.array([0.0 if is_pause(p) else 1.0 for p in timeline.at_frames(fps, num_frames)],
                    np.float32)
