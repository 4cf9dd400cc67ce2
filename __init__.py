"""VLOGGER for ComfyUI: one photo + speech -> a talking, moving video (Corona et al., 2024)."""
import os
import sys

WEB_DIRECTORY = "./web"

# The method lives in the top-level package `vlogger_core` (importable without ComfyUI by the
# tests and CLIs); make it importable when ComfyUI loads this folder as a custom node.
_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

try:
    from comfy_api.latest import ComfyExtension, io
except ImportError:  # imported outside ComfyUI (e.g. by pytest collecting the repo): no nodes
    ComfyExtension = None

if ComfyExtension is not None:
    from .nodes import (
        collect_nodes,
        live_routes,  # noqa: F401  (the live page's WebSocket, docs/live.md)
    )

    class VloggerExtension(ComfyExtension):
        async def get_node_list(self) -> list[type[io.ComfyNode]]:
            return collect_nodes()

    async def comfy_entrypoint() -> VloggerExtension:
        return VloggerExtension()
