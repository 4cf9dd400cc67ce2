"""Editing: region inpainting (re-dub a video with new speech)."""
