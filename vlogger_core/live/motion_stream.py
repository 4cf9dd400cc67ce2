"""Motion as the speech arrives: audio chunks in, final motion frames (at the output fps) out.

The same motion as sample_motion gives for the same audio and settings, produced frame by frame:
- features: audio_features on a slice of the stream (frame-aligned, with a margin before it and
  zeros after the samples it may use): the same values as on the whole file;
- the model: the batch's windows (window / context / blend), each denoised a few tokens at a time
  (causal.CausalWindow, a key/value cache per diffusion step). One difference: the stream does not
  know where it ends, so the next window is opened as soon as the frames reach its regenerated
  context (batch opens it only when the file is longer than the current window); a stream that
  ends inside the last `blend` frames of a window therefore differs there by the crossfade;
- pose smoothing (smooth_pose), denormalising, resampling to the output fps (resample_motion on a
  slice starting at a whole second), blinks, artist controls, lip closure (the closure head on the
  audio from CLOSURE_S before the frames) and the body layer, each applied to the frames as they
  become final.

Look-ahead (what a frame waits for beyond the end of its own audio span), at the shipped model's
25 fps with 2 frames per token: the rest of its token (<= 40 ms), 2 model frames of pose smoothing
(80 ms), the resampling's next model frame and half a mel window (12.5 ms): at most
LOOKAHEAD_S = 0.1725 s at 24 fps output (`lookahead_seconds` computes it for other rates).

The body layer and blinks read the speech from an anchor: anchors every ANCHOR_S seconds; a frame
uses the anchor before its own, cross-faded (angles linearly, blinks as the maximum) into its own
anchor over the second half of the interval. So memory and time per frame stay flat however long
the stream runs, and the first 1.5 x ANCHOR_S seconds equal the batch path exactly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ..audio.features import audio_features
from ..errors import VloggerError
from ..motion.body_layer import (
    LAYER_JOINTS,
    compose_layer_,
    head_turn,
    layer_angles,
    speech_drive,
)
from ..motion.closure import close_lips, shipped_closure, shut_track
from ..motion.model import MotionDiffusion
from ..motion.params import Motion, matrix_to_rot6d, rot6d_to_matrix
from ..motion.resample import resample_motion
from ..motion.sampling import (
    SampleSettings,
    add_prior_blinks,
    apply_controls,
    layer_amounts,
    make_scheduler,
    smooth_pose,
)
from ..threads import torch_threads
from .causal import CausalWindow, check_window

SR = 16000
MEL_HALF = 200            # samples: half of the 25 ms mel window
ANCHOR_S = 8              # seconds between the body layer's anchors
CLOSURE_S = 2             # whole seconds of audio the lip-closure head reads before a frame (>= 1.24 s)
MAX_FPS = 60


def lookahead_seconds(fps: int, model_fps: float = 25.0, frames_per_token: int = 2, smoothing: int = 2) -> float:
    """The most audio, in seconds past the end of its own span, that any output frame waits for."""
    worst = 0.0
    for j in range(int(fps * 4)):
        pos = (j + 0.5) / fps * model_fps - 0.5
        hi = math.floor(pos) + 1 + smoothing                       # model frames it needs
        tok_end = (hi // frames_per_token + 1) * frames_per_token   # whole tokens
        need = tok_end / model_fps + MEL_HALF / SR
        worst = max(worst, need - (j + 1) / fps)
    return worst


@dataclass
class LiveSettings:
    """The stream's settings: the sampler's (same meaning and defaults, blinks on: idle faces blink)
    and the output fps (an integer, 1..60)."""

    fps: int = 24
    sample: SampleSettings = field(default_factory=lambda: SampleSettings(add_blinks=True))
    anchor_s: int = ANCHOR_S       # seconds between the body layer's anchors (module doc)

    def check(self, model: MotionDiffusion) -> None:
        if not (isinstance(self.fps, int) and 1 <= self.fps <= MAX_FPS):
            raise VloggerError(f"live fps must be a whole number 1..{MAX_FPS}, got {self.fps!r}", "fps",
                               "use 24, 25 or 30")
        if not (isinstance(self.anchor_s, int) and self.anchor_s >= CLOSURE_S + 2):
            raise VloggerError(f"anchor_s must be a whole number of seconds >= {CLOSURE_S + 2}, got {self.anchor_s!r}",
                               "anchor_s", f"use {ANCHOR_S}")
        s = self.sample
        s.check()
        check_window(s.window, s.context, s.blend, model.config.frames_per_token)
        mfps = model.config.fps
        if abs(mfps - round(mfps)) > 1e-9 or (SR / mfps) % 160:
            raise VloggerError(f"live mode needs a motion model whose frame is a whole number of 10 ms "
                               f"(its fps divides 100); this one runs at {mfps} fps", "model",
                               "use the shipped motion model (25 fps)")


class MotionStream:
    """push(wave16k) -> the newly final Motion frames (output fps), in order, from frame 0."""

    def __init__(self, model: MotionDiffusion, settings: LiveSettings | None = None, device=None):
        settings = settings or LiveSettings()
        settings.check(model)
        self.model, self.settings = model, settings
        self.device = torch.device(device or next(model.parameters()).device)
        c = model.config
        self.mfps = int(round(c.fps))
        self.spf = SR // self.mfps                  # samples per model frame
        self.fps = settings.fps
        s = settings.sample
        self.W, self.C = s.window, s.context
        self.blend = min(s.blend, self.C // 2)
        self.held = self.C - self.blend
        self.gen = torch.Generator().manual_seed(int(s.seed))
        self.amounts = layer_amounts(s)
        self.anchor_frames = int(settings.anchor_s) * self.fps
        make_scheduler(model, s.sampler)    # imports diffusers now (seconds), not at the first frame
        if s.lip_closure > 0:
            shipped_closure(str(self.device))
        self.reset_stream()

    # --- state ---------------------------------------------------------------------------------
    def reset_stream(self) -> None:
        """Start over at time 0 (a new stream)."""
        self.wave = np.zeros(0, np.float32)     # samples from self.wave_base on
        self.wave_base = 0
        self.total = 0                          # samples pushed
        self.raw: dict[int, torch.Tensor] = {}  # final normalised model frames
        self.n_final = 0                        # model frames final
        self.n_smooth = 0                       # model frames smoothed + denormalised
        self.model_motion: list[torch.Tensor] = []   # denormalised model-rate vectors, from model_base
        self.model_base = 0
        self.base_out: list[torch.Tensor] = []  # output-rate undecorated vectors, from out_base
        self.out_base = 0
        self.n_out = 0                          # output frames emitted
        self.windows: list[tuple[int, CausalWindow]] = []
        self.end: int | None = None             # samples of a stream that has ended (flush)

    @property
    def seconds(self) -> float:
        return self.total / SR

    def push(self, wave16k) -> Motion | None:
        """Append mono 16 kHz samples (float, -1..1); returns the new final frames (or None)."""
        w = np.asarray(wave16k.detach().cpu().numpy() if torch.is_tensor(wave16k) else wave16k,
                       np.float32).reshape(-1)
        if not np.isfinite(w).all():
            raise VloggerError("the audio has NaN or infinite samples", "wave16k", "send PCM audio in -1..1")
        if len(w):
            self.wave = np.concatenate([self.wave, w])
            self.total += len(w)
        return self._advance()

    def drop_after(self, keep_samples: int) -> None:
        """Forget pushed audio after `keep_samples` that no motion frame has read yet (barge-in):
        the samples of frames whose features are not computed yet."""
        done = self._features_done_samples()
        keep = max(done, min(self.total, keep_samples))
        self.wave = self.wave[: keep - self.wave_base]
        self.total = keep

    def _features_done_samples(self) -> int:
        return self.n_final * self.spf

    # --- features ------------------------------------------------------------------------------
    def _features(self, i0: int, i1: int) -> torch.Tensor:
        """Normalised features of model frames i0..i1 (their audio and 12.5 ms after it present)."""
        m = min(2, i0)                                        # frames of margin (mel padding)
        a = (i0 - m) * self.spf
        b = i1 * self.spf + MEL_HALF
        seg = self.wave[a - self.wave_base: b - self.wave_base]
        # zeros after: no feature used reads them; audio_features wants >= 0.2 s
        seg = np.concatenate([seg, np.zeros(max(3200, self.spf * 2), np.float32)])
        f = audio_features(torch.from_numpy(seg), self.mfps, i1 - i0 + m)[m:]
        return self.model.normalize_audio(f.to(self.device))

    # --- model windows -------------------------------------------------------------------------
    def _window(self, start: int) -> CausalWindow:
        s = self.settings.sample
        ctx = torch.stack([self.raw[f] for f in range(start, start + self.held)]) if start > 0 else \
            torch.zeros(0, self.model.config.motion_dim, device=self.device)
        return CausalWindow(self.model, self.W, ctx, s.steps, s.guidance, s.sampler, self.gen, self.device)

    def _run_model(self, avail: int) -> None:
        """Denoise and finalise model frames up to `avail` (a token boundary)."""
        step = self.W - self.C
        while self.n_final < avail:
            if not self.windows:
                self.windows.append((0, self._window(0)))
            s, cur = self.windows[0]
            nxt = s + step
            end = min(avail, s + self.W)
            if cur.done < end - s:
                cur.advance(self._features(s + cur.done, end), end - s)
            own = min(end, nxt + self.held)       # frames this window alone decides
            for f in range(self.n_final, own):
                self.raw[f] = cur.out[f - s].clone()
            self.n_final = max(self.n_final, own)
            if end > nxt + self.held:
                if len(self.windows) == 1:
                    self.windows.append((nxt, self._window(nxt)))
                s2, w2 = self.windows[1]
                e2 = min(avail, s2 + self.W)
                if w2.done < e2 - s2:
                    w2.advance(self._features(s2 + w2.done, e2), e2 - s2)
                for f in range(self.n_final, end):   # regenerated context: cross-faded into the next
                    ramp = (f - nxt - self.held + 1) / (self.blend + 1)
                    self.raw[f] = cur.out[f - s] * (1 - ramp) + w2.out[f - nxt] * ramp
            self.n_final = end
            if end >= s + self.W:
                self.windows.pop(0)
            # keep what the next window's context and the pose smoothing (not yet run) read
            for f in [k for k in self.raw if k < min(self.n_final - self.W, self.n_smooth - 4)]:
                del self.raw[f]

    # --- after the model -------------------------------------------------------------------------
    def _advance(self, final: bool = False) -> Motion | None:
        s = self.settings.sample
        with torch_threads(s.cpu_threads if self.device.type == "cpu" else None):
            avail = max(0, (self.total - MEL_HALF) // self.spf)
            avail -= avail % self.model.config.frames_per_token
            if avail > self.n_final:
                self._run_model(avail)
            return self._post(final)

    def _post(self, final: bool) -> Motion | None:
        s = self.settings.sample
        c = self.model.config
        k = s.pose_smoothing
        # smoothed model frames: each needs k final frames after it
        n_sm = self.n_final if final else max(self.n_smooth, self.n_final - k)
        if n_sm > self.n_smooth:
            a = max(0, self.n_smooth - k)
            b = min(self.n_final, n_sm + k)
            x = torch.stack([self.raw[f] for f in range(a, b)])
            if k > 0:
                x = smooth_pose(x, c.num_expr, c.joints, k)
            x = self.model.denormalize_motion(x[self.n_smooth - a: n_sm - a]).cpu()
            self.model_motion.extend(x)
            self.n_smooth = n_sm
        # output frames: the resampling reads model frames lo and lo + 1 around the frame's centre
        n_audio = int(math.floor(self.total * self.fps / SR))
        if self.end is not None:        # an ended stream: round(duration x fps) frames, as batch
            n_audio = min(n_audio, int(round(self.end * self.fps / SR)))
        j1 = self.n_out
        while j1 < n_audio:
            pos = (j1 + 0.5) / self.fps * self.mfps - 0.5
            if not final and math.floor(pos) + 1 >= self.n_smooth:
                break
            j1 += 1
        if final:
            j1 = min(j1, n_audio)
        if j1 <= self.n_out:
            return None
        sec = self.n_out // self.fps                     # resample from a whole second
        m0 = sec * self.mfps
        vec = torch.stack(self.model_motion[m0 - self.model_base:])
        mm = Motion.from_vector(vec, self.mfps, c.expression_set, c.joints)
        mm.rot6d = matrix_to_rot6d(rot6d_to_matrix(mm.rot6d))
        if c.expression_set == "arkit52":
            mm.expression = mm.expression.clamp(0, 1)
        lo_j = self.n_out - sec * self.fps
        count = j1 - self.n_out
        r = resample_motion(mm, self.fps, lo_j + count)
        self.base_out.extend(r.as_vector()[lo_j:lo_j + count])
        out = self._decorate(self.n_out, j1)
        first, self.n_out = self.n_out, j1
        self._trim(first)
        return out

    def _decorate(self, j0: int, j1: int) -> Motion:
        """Blinks, controls and the body layer for output frames j0..j1 (see the module doc)."""
        s = self.settings.sample
        c = self.model.config
        P = self.anchor_frames
        js = np.arange(j0, j1)
        k = js // P
        w = np.where(k >= 1, np.clip((js - k * P - P / 2) / (P / 2), 0, 1), 0.0)
        weights: dict[int, np.ndarray] = {}          # anchor -> its weight per frame
        for a in set(k.tolist()) | set((k - 1).tolist()):
            if a >= 0:
                wa = np.where(k == a, np.where(k == 0, 1.0, w), 0.0) + np.where(k - 1 == a, 1 - w, 0.0)
                if (wa > 0).any():
                    weights[a] = wa
        expr, rot, ang = None, None, {}
        n = j1 - j0
        for a, wa in sorted(weights.items()):
            A = a * P
            off = max(0, A - j0)          # a later anchor starts inside the block (weight 0 before it)
            base = Motion.from_vector(torch.stack(self.base_out[A - self.out_base: j1 - self.out_base]),
                                      self.fps, c.expression_set, c.joints)
            seed = s.seed + 7919 * a
            if s.add_blinks:
                base = add_prior_blinks(base, seed)
            base = apply_controls(base, s.expression_intensity, s.head_motion, s.gesture_amount)
            lo = A * SR // self.fps - self.wave_base
            e = torch.full((n, base.expression.shape[1]), -math.inf)
            e[off:] = base.expression[j0 + off - A:]
            # the face is the same from every anchor but for its blinks: the maximum of those used
            e = torch.where(torch.from_numpy(wa > 0)[:, None], e, torch.full_like(e, -math.inf))
            expr = e if expr is None else torch.maximum(expr, e)
            if rot is None:               # the first anchor starts at or before j0: the same rotations
                rot = base.rot6d[j0 - A:]
            if s.body_layer:
                hi = lo + int(round((j1 - A) * SR / self.fps))
                drive = speech_drive(torch.from_numpy(self.wave[lo:hi]), self.fps, base.num_frames)
                angles = layer_angles(drive, head_turn(base), self.fps, seed, self.amounts)
                for jn in LAYER_JOINTS:
                    full = np.zeros((n, 3))
                    full[off:] = angles[jn][j0 + off - A:]
                    ang[jn] = ang.get(jn, 0.0) + wa[:, None] * full
        out = Motion(self.fps, c.expression_set, expr, rot.clone(), list(c.joints))
        if s.lip_closure > 0:
            out = close_lips(out, self._shut(j0, j1), s.lip_closure)
        if s.body_layer:
            compose_layer_(out.rot6d, out.joints, ang)      # as add_body_layer composes it
        return out

    def _shut(self, j0: int, j1: int) -> torch.Tensor:
        """The lip-closure head's p(shut) for output frames j0..j1. The head sees CLOSURE_S of audio
        before a frame (its dilated convolutions) and a little after (inside our look-ahead), so it
        runs on the audio from a whole second CLOSURE_S before j0: the values of the whole file."""
        sec = max(0, j0 // self.fps - CLOSURE_S)
        a = sec * SR - self.wave_base
        # zeros after the stream's end: the head wants >= 0.2 s; no frame made here reads them
        wave = torch.from_numpy(np.concatenate([self.wave[a:self.total - self.wave_base], np.zeros(3200, np.float32)]))
        p = shut_track(shipped_closure(str(self.device)), wave.to(self.device), self.fps, j1 - sec * self.fps)
        return p[j0 - sec * self.fps:]

    def _trim(self, first: int) -> None:
        """Keep what later frames read: two anchors of output frames and of audio (and the audio
        of the frames just made, from `first`), a second of model frames."""
        P = self.anchor_frames
        keep_out = max(0, (self.n_out // P - 1) * P)
        if keep_out > self.out_base:
            del self.base_out[: keep_out - self.out_base]
            self.out_base = keep_out
        keep_s = min(keep_out * SR // self.fps, first * SR // self.fps,
                     max(0, self.n_final - self.W - 4) * self.spf)
        if keep_s > self.wave_base:
            self.wave = self.wave[keep_s - self.wave_base:]
            self.wave_base = keep_s
        keep_m = (self.n_out // self.fps - 1) * self.mfps
        if keep_m > self.model_base:
            del self.model_motion[: keep_m - self.model_base]
            self.model_base = keep_m

    def flush(self) -> Motion | None:
        """The stream has ended: the remaining frames (round(duration x fps) in all). The last
        look-ahead's worth of frames see silence after the end instead of the file's end."""
        pad = int(SR * 0.4)
        self.end = self.total
        self.wave = np.concatenate([self.wave, np.zeros(pad, np.float32)])
        self.total += pad
        out = self._advance(final=True)
        self.total = self.end
        return out
