"""VLOGGER (Corona et al., 2024) as plain PyTorch: one module per stage of the paper.

This package never imports ComfyUI; it takes tensors, dataclasses, a `device` and optional
`progress(done, total)` / `interrupt()` callbacks (see callbacks.py).
"""
