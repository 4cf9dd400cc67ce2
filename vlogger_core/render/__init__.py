"""2D controls and frames without diffusion weights: rasterizer, control maps, compositor, the default talking-video renderer and the MP4 writer."""
