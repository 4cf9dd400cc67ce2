"""Stage 2: the temporal image-to-image diffusion model, its sampling, temporal outpainting, super-resolution, the streamed path, weights, SD checkpoints and LoRA."""
