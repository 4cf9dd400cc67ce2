"""The pack's custom ComfyUI socket types, declared once (every node module imports them)."""
from comfy_api.latest import io

Body = io.Custom("VLOGGER_BODY")
Fit = io.Custom("VLOGGER_FIT")
Motion = io.Custom("VLOGGER_MOTION")
MotionModel = io.Custom("VLOGGER_MOTION_MODEL")
Controls = io.Custom("VLOGGER_CONTROLS")
Phonemes = io.Custom("VLOGGER_PHONEMES")
VideoModel = io.Custom("VLOGGER_VIDEO_MODEL")
