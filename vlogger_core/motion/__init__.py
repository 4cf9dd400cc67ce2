"""Stage 1 (network M): the per-frame motion parameters, the audio-to-motion diffusion model, sampling, frame-rate resampling and the motion plot."""
