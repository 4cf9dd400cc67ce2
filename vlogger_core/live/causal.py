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
    (normalised clean motion); `advance(audio_n, stop)` denoises frames up to `stop`.

    What does not depend on a block's audio is prepared when the window opens (before its audio
    arrives): the step and position embeddings, DDIM's per-step coefficients, the layers' weights
    and the key/value cache's buffers. A block then costs, per diffusion step, the network's own
    tensor operations and no more (about 80 for the shipped model's 4 layers)."""

    @torch.no_grad()
    def __init__(self, model: MotionDiffusion, size: int, ctx: torch.Tensor, steps: int, guidance: float,
                 sampler: str, gen: torch.Generator, device):
        self.model, self.size, self.steps, self.guidance, self.sampler = model, size, steps, guidance, sampler
        self.device = torch.device(device)
        c = model.config
        self.p = c.frames_per_token
        d = c.motion_dim
        sched = make_scheduler(model, sampler)
        sched.set_timesteps(steps)
        self.sched = sched               # DDIM's update is stateless: one schedule serves every block
        self.noise = torch.randn((1, size, d), generator=gen).to(self.device) * sched.init_noise_sigma
        self.ctx = ctx.to(self.device)
        self.rows = 2 if guidance != 1.0 else 1
        # the diffusion-step embeddings (the same for every block)
        tt = torch.stack([torch.full((self.rows,), int(t), dtype=torch.long) for t in sched.timesteps]).to(self.device)
        self.step_emb = model.step_mlp(sinusoidal(tt, c.d_model))[:, :, None]   # [steps, rows, 1, d]
        tokens = -(-size // self.p)
        self.pos_emb = sinusoidal(torch.arange(tokens, device=self.device), c.d_model)   # [tokens, d]
        self.coef = ddim_coefficients(sched) if sampler == "ddim" else None
        self.layers = [LayerWeights(layer) for layer in model.transformer.layers]
        self.motion_in_wt, self.motion_in_b = transposed(model.motion_in.weight), model.motion_in.bias
        norm, head = model.out
        self.head_norm = (norm.weight, norm.bias, norm.eps)
        self.head_wt, self.head_b = transposed(head.weight), head.bias
        # kv[step, layer] = keys and values [2, rows, heads, tokens, head_dim], set for the done tokens
        # (torch.empty: its pages are touched as the tokens come)
        heads = self.layers[0].heads if self.layers else 1
        self.kv = torch.empty((steps, len(self.layers), 2, self.rows, heads, tokens, c.d_model // heads),
                              device=self.device, dtype=self.step_emb.dtype)
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
        with torch.inference_mode():
            self._denoise(audio_n, a, b)
        self.done = b
        return self.out[a:b]

    def _denoise(self, audio_n: torch.Tensor, a: int, b: int) -> None:
        """All diffusion steps on frames a..b (whole tokens, or the stream's padded last one)."""
        n = b - a
        pad = (-n) % self.p
        c = self.ctx.shape[0]
        known = (torch.arange(a, b + pad, device=self.device) < c).to(torch.float32)[None]
        if pad:
            known[:, n:] = 0
        nk = max(0, min(b, c) - a)             # known frames in the block (its first ones)
        ctx = self.ctx[a:a + nk]
        x = self.noise[:, a:b].clone()
        au = audio_n.to(self.device)[None]
        if pad:
            au = torch.cat([au, au[:, -1:].expand(1, pad, -1)], 1)
        if self.sampler == "ddim":
            sched = None
        else:                              # multistep: a fresh history for this block's frames
            sched = make_scheduler(self.model, self.sampler)
            sched.set_timesteps(self.steps)
        m, r = self.model, self.rows
        tok0 = a // self.p
        nt = (n + pad) // self.p
        emb = m.audio_mlp(au.reshape(1, nt, -1)).expand(r, -1, -1)     # the audio: once per block
        if r == 2:   # classifier-free guidance: row 0 with the audio, row 1 with the null audio
            emb = torch.stack([emb[0], m.null_audio.expand_as(emb[1])])
        emb = emb + self.pos_emb[tok0:tok0 + nt][None]
        embs = emb + self.step_emb                                      # [steps, rows, tokens, d]
        mask = self._mask(tok0, nt)
        for i in range(self.steps):
            if nk:
                x[:, :nk] = ctx
            xp = torch.cat([x, x[:, -1:].expand(1, pad, -1)], 1) if pad else x
            x0 = self._forward(xp, embs[i], known, tok0, i, mask)
            if pad:
                x0 = x0[:, :n]
            x = ddim_step(self.coef[i], x0, x) if sched is None else \
                sched.step(x0, sched.timesteps[i], x).prev_sample
        if nk:
            x[:, :nk] = ctx
        self.out[a:b] = x[0]

    def _mask(self, tok0: int, nt: int) -> torch.Tensor | None:
        """The block's additive attention mask [nt, tok0 + nt]: its tokens see the cached tokens
        and the block's earlier tokens (None for one token: it sees them all)."""
        if nt == 1:
            return None
        mask = torch.zeros(nt, tok0 + nt, device=self.device)
        mask[:, tok0:] = torch.triu(torch.full((nt, nt), float("-inf"), device=self.device), diagonal=1)
        return mask

    def _forward(self, x: torch.Tensor, emb: torch.Tensor, known: torch.Tensor, tok0: int,
                 step_index: int, mask: torch.Tensor | None | bool = False) -> torch.Tensor:
        """MotionDiffusion.forward (same weights, same maths) for the tokens tok0.. of the window,
        attending to the cached earlier tokens of this diffusion step; emb [rows, tokens, d] = the
        audio + step + position embeddings; mask: the block's (False: made here). Returns x0 [1, n, D]."""
        m = self.model
        p, d = self.p, m.config.d_model
        r = self.rows
        nt = x.shape[1] // p
        rn = r * nt
        tok = torch.cat([x, known[..., None].to(x.dtype)], -1).reshape(nt, -1)
        # the rows share their motion: one projection, broadcast over the rows' embeddings
        h = (torch.addmm(self.motion_in_b, tok, self.motion_in_wt) + emb).reshape(rn, d)
        if mask is False:
            mask = self._mask(tok0, nt)
        cache = self.kv[step_index]
        total = tok0 + nt
        for li, w in enumerate(self.layers):
            y = F.layer_norm(h, (d,), w.norm1_w, w.norm1_b, w.norm1_eps)
            qkv = torch.addmm(w.in_b, y, w.in_wt).view(r, nt, 3, w.heads, d // w.heads).permute(2, 0, 3, 1, 4)
            kv = cache[li]                                   # [2, rows, heads, tokens, head_dim]
            kv.narrow(3, tok0, nt).copy_(qkv[1:])
            k, v = kv.narrow(3, 0, total).unbind(0)
            o = F.scaled_dot_product_attention(qkv[0], k, v, attn_mask=mask)
            h = torch.addmm(w.out_b, o.transpose(1, 2).reshape(rn, d), w.out_wt).add_(h)
            y = F.layer_norm(h, (d,), w.norm2_w, w.norm2_b, w.norm2_eps)
            h = torch.addmm(w.lin2_b, w.activation(torch.addmm(w.lin1_b, y, w.lin1_wt)), w.lin2_wt).add_(h)
        out = torch.addmm(self.head_b, F.layer_norm(h, (d,), *self.head_norm), self.head_wt).reshape(r, nt * p, -1)
        if r == 2:
            return out[1:] + self.guidance * (out[:1] - out[1:])
        return out


class LayerWeights:
    """One nn.TransformerEncoderLayer's (norm_first) tensors, looked up once per window; the
    linear layers' weights transposed (contiguous) for addmm."""

    def __init__(self, layer: torch.nn.TransformerEncoderLayer):
        att = layer.self_attn
        self.heads = att.num_heads
        self.in_wt, self.in_b = transposed(att.in_proj_weight), att.in_proj_bias
        self.out_wt, self.out_b = transposed(att.out_proj.weight), att.out_proj.bias
        self.norm1_w, self.norm1_b, self.norm1_eps = layer.norm1.weight, layer.norm1.bias, layer.norm1.eps
        self.norm2_w, self.norm2_b, self.norm2_eps = layer.norm2.weight, layer.norm2.bias, layer.norm2.eps
        self.lin1_wt, self.lin1_b = transposed(layer.linear1.weight), layer.linear1.bias
        self.lin2_wt, self.lin2_b = transposed(layer.linear2.weight), layer.linear2.bias
        self.activation = gelu if layer.activation is F.gelu else layer.activation


def transposed(weight: torch.Tensor) -> torch.Tensor:
    return weight.detach().t().contiguous()


_HALF, _ONE, _SQRT1_2 = (torch.tensor(v) for v in (0.5, 1.0, 1 / math.sqrt(2)))   # 0-dim: no scalar wrapping


def gelu(x: torch.Tensor) -> torch.Tensor:
    """F.gelu (erf), x/2 (1 + erf(x/sqrt 2)), as ATen's CPU kernel writes it (equal to F.gelu to
    float rounding, ~1e-6): F.gelu hands a float tensor to oneDNN, whose set-up costs about 7 us
    a call on these few values (this: about 5)."""
    return (x * _HALF).mul_(torch.erf(x * _SQRT1_2).add_(_ONE))


def ddim_coefficients(sched) -> list[tuple[torch.Tensor, ...]]:
    """Per step of a diffusers DDIMScheduler (eta 0, prediction "sample", no clipping, after
    set_timesteps): (sqrt(a_t), sqrt(1 - a_t), sqrt(a_prev), sqrt(1 - a_prev)) as the 0-dim
    float32 tensors its step() computes, so ddim_step gives its prev_sample bit for bit."""
    cfg = sched.config
    if cfg.prediction_type != "sample" or cfg.clip_sample or cfg.thresholding:
        raise VloggerError("live DDIM expects a schedule predicting the sample, unclipped", "sampler",
                           "use the sampler's make_scheduler")
    ratio = cfg.num_train_timesteps // sched.num_inference_steps
    out = []
    for t in sched.timesteps:
        prev = int(t) - ratio
        a_t = sched.alphas_cumprod[t]
        a_prev = sched.alphas_cumprod[prev] if prev >= 0 else sched.final_alpha_cumprod
        out.append((a_t ** 0.5, (1 - a_t) ** 0.5, a_prev ** 0.5, (1 - a_prev) ** 0.5))
    return out


def ddim_step(coef: tuple[torch.Tensor, ...], x0: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """DDIMScheduler.step(x0, t, x).prev_sample (eta 0, prediction "sample"), its operations in
    its order, with one step's ddim_coefficients."""
    sa, sb, spa, spb = coef
    eps = (x - sa * x0) / sb
    return spa * x0 + spb * eps


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
