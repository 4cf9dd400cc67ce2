"""Live mode: the avatar talks as the speech arrives (streamed motion and frames, docs/live.md)."""
