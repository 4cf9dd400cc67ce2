"""VLOGGER for ComfyUI: one photo + speech -> a talking, moving video (Corona et al., 2024)."""
from comfy_api.latest import ComfyExtension, io

from .nodes import collect_nodes

WEB_DIRECTORY = "./web"


class VloggerExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return collect_nodes()


async def comfy_entrypoint() -> VloggerExtension:
    return VloggerExtension()
