"""VLOGGER for ComfyUI: one photo + speech -> a talking, moving video (Corona et al., 2024)."""
WEB_DIRECTORY = "./web"

try:
    from comfy_api.latest import ComfyExtension, io
except ImportError:  # imported outside ComfyUI (e.g. by pytest collecting the repo): no nodes
    ComfyExtension = None

if ComfyExtension is not None:
    from .nodes import collect_nodes

    class VloggerExtension(ComfyExtension):
        async def get_node_list(self) -> list[type[io.ComfyNode]]:
            return collect_nodes()

    async def comfy_entrypoint() -> VloggerExtension:
        return VloggerExtension()
