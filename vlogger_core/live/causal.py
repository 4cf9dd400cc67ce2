"""One sampling window of the stage-1 motion model, denoised a few tokens at a time.

The network is causal (token k attends to tokens <= k; every other operation is per token) and
DDIM's update is per frame, so running all diffusion steps on a window's first k tokens gives
exactly the first k tokens of running them on the whole window. `CausalWindow` keeps, for every
diffusion step and layer, the keys and values of the tokens already denoised, so each new block
of tokens costs steps x (its own tokens attending to the cache) instead of the whole window again.
The window's noise is drawn once when it opens (`torch.randn((1, window, D))` from the sampler's
generator, as sample_motion draws it) and its first `held` frames are clean known context, as
sample_motion's windows after the first. tests/test_live_engine.py checks it against
MotionDiffusion.forward and the streamed motion against sample_motion.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import VloggerError
from ..motion.model import MotionDiffusion, sinusoidal
from ..motion.sampling import make_scheduler


class CausalWindow:
    """A window of `size` frames (frames_per_token-aligned), its first `ctx.shape[0]` frames known
    (normalised clean motion); `advance(audio_n, stop)` denoises frames up to `stop`."""

    @torch.no_grad()
    def __init__(self, model: MotionDiffusion, size: int, ctx: torch.Tensor, steps: int, guidance: float,
                 sampler: str, gen: torch.Generator, device):
        self.model, self.size, self.steps, self.guidance, self.sampler = model, size, steps, guidance, sampler
        self.device = torch.device(device)
        self.p = model.config.frames_per_token
        d = model.config.motion_dim
        sched = make_scheduler(model, sampler)
        sched.set_timesteps(steps)
        self.sched = sched               # DDIM's update is stateless: one schedule serves every block
        self.noise = torch.randn((1, size, d), generator=gen).to(self.device) * sched.init_noise_sigma
        self.ctx = ctx.to(self.device)
        self.rows = 2 if guidance != 1.0 else 1
        # the diffusion-step embeddings (the same for every block)
        tt = torch.stack([torch.full((self.rows,), int(t), dtype=torch.long) for t in sched.timesteps]).to(self.device)
        self.step_emb = model.step_mlp(sinusoidal(tt, model.config.d_model))[:, :, None]   # [steps, rows, 1, d]
        # cache[step][layer] = (keys, values) [rows, heads, tokens, head_dim] of the done tokens
        self.cache: list[list[tuple[torch.Tensor, torch.Tensor] | None]] = [
            [None] * model.config.n_layers for _ in range(steps)]
        self.done = 0                      # frames denoised
        self.out = torch.empty(size, d, device=self.device)

    @torch.no_grad()
    def advance(self, audio_n: torch.Tensor, stop: int, final: bool = False) -> torch.Tensor:
        """audio_n [stop - done, A] normalised features of the frames done..stop. Frames done..stop
        are denoised and returned [stop - done, D]. `stop` must end a token unless `final` (the
        stream's end: the last token is padded by repeating its last frame, as the model does)."""
        a, b = self.done, min(stop, self.size)
        if b <= a:
            return self.out[a:a]
        if b % self.p and not final:
            raise VloggerError(f"block end {b} is not on a token boundary", "stop",
                               f"advance in whole tokens of {self.p} frames")
        n = b - a
        pad = (-n) % self.p
        c = self.ctx.shape[0]
        known = (torch.arange(a, b + pad, device=self.device) < c).to(torch.float32)[None]
        if pad:
            known[:, n:] = 0
        kidx = torch.arange(a, max(a, min(b, c)), device=self.device)
        x = self.noise[:, a:b].clone()
        au = audio_n.to(self.device)[None]
        if pad:
            au = torch.cat([au, au[:, -1:].expand(1, pad, -1)], 1)
        if self.sampler == "ddim":
            sched = self.sched
        else:                              # multistep: a fresh history for this block's frames
            sched = make_scheduler(self.model, self.sampler)
            sched.set_timesteps(self.steps)
        m, r = self.model, self.rows
        nt = (n + pad) // self.p
        emb = m.audio_mlp(au.reshape(1, nt, -1)).expand(r, -1, -1)     # the audio: once per block
        if r == 2:   # classifier-free guidance: row 0 with the audio, row 1 with the null audio
            emb = torch.stack([emb[0], m.null_audio.expand_as(emb[1])])
        emb = emb + sinusoidal(torch.arange(a // self.p, a // self.p + nt, device=self.device), m.config.d_model)[None]
        for i, t in enumerate(sched.timesteps):
            if len(kidx):
                x[:, kidx - a] = self.ctx[kidx]
            xp = torch.cat([x, x[:, -1:].expand(1, pad, -1)], 1) if pad else x
            x0 = self._forward(xp, emb + self.step_emb[i], known, a // self.p, i)[:, :n]
            x = sched.step(x0, t, x).prev_sample
        if len(kidx):
            x[:, kidx - a] = self.ctx[kidx]
        self.out[a:b] = x[0]
        self.done = b
        return self.out[a:b]

    def _forward(self, x: torch.Tensor, emb: torch.Tensor, known: torch.Tensor, tok0: int,
                 step_index: int) -> torch.Tensor:
        """MotionDiffusion.forward (same weights, same maths) for the tokens tok0.. of the window,
        attending to the cached earlier tokens of this diffusion step; emb [rows, tokens, d] = the
        audio + step + position embeddings. Returns x0 [1, n, D]."""
        m = self.model
        p, d = self.p, m.config.d_model
        r = self.rows
        nt = x.shape[1] // p
        x = x.expand(r, -1, -1)
        tok = torch.cat([x, known.expand(r, -1)[..., None].to(x.dtype)], -1).reshape(r, nt, -1)
        h = m.motion_in(tok) + emb
        # this block's tokens see the cached tokens and the block's earlier tokens
        total = tok0 + nt
        mask = torch.zeros(nt, total, device=x.device)
        mask[:, tok0:] = torch.triu(torch.full((nt, nt), float("-inf"), device=x.device), diagonal=1)
        for li, layer in enumerate(m.transformer.layers):
            att = layer.self_attn
            heads = att.num_heads
            hd = d // heads
            y = layer.norm1(h)
            q, k, v = F.linear(y, att.in_proj_weight, att.in_proj_bias).chunk(3, -1)
            q, k, v = (z.reshape(r, nt, heads, hd).transpose(1, 2) for z in (q, k, v))
            cached = self.cache[step_index][li]
            if cached is not None:
                k = torch.cat([cached[0], k], 2)
                v = torch.cat([cached[1], v], 2)
            self.cache[step_index][li] = (k, v)
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            h = h + att.out_proj(o.transpose(1, 2).reshape(r, nt, d))
            h = h + layer.linear2(layer.activation(layer.linear1(layer.norm2(h))))
        out = m.out(h).reshape(r, nt * p, -1)
        if r == 2:
            return out[1:] + self.guidance * (out[:1] - out[1:])
        return out


def check_window(window: int, context: int, blend: int, frames_per_token: int) -> None:
    """The windows the stream can continue: token-aligned, and the next window's held context
    lies in the previous window's own frames (window >= 2 x context)."""
    p = frames_per_token
    if window % p or context % p:
        raise VloggerError(f"window {window} and context {context} must be multiples of {p} frames "
                           "(the model's token) for live mode", "window", f"use multiples of {p}, e.g. 256 and 32")
    if window < 2 * context or context <= 0:
        raise VloggerError(f"live mode needs a context between 1 and half the window; got window {window}, "
                           f"context {context}", "context", "use a context of about an eighth of the window")
    if not math.isfinite(blend) or blend < 0:
        raise VloggerError(f"blend {blend} is negative", "blend", "use 8")
