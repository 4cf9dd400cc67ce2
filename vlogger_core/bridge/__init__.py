"""Bridge: VLOGGER motion as the driving signals of ComfyUI's video models (pose / face / depth videos, Wan windows, model fetch)."""
