"""Write the node help pages the ComfyUI frontend shows (web/docs/<NodeId>.md) from the nodes'
own schemas (description, inputs with defaults, ranges and tooltips, outputs), so the pages and
the nodes cannot drift apart. Run after changing a node:

    .venv/bin/python scripts/make_node_docs.py
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from comfyui_server import ComfyClient, ComfyServer  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "web" / "docs"
FILE_SUFFIXES = {".wav", ".mp3", ".flac", ".ogg", ".m4a", ".mp4", ".mov", ".webm", ".mkv", ".png",
                 ".jpg", ".jpeg", ".webp", ".npz", ".safetensors", ".ckpt", ".pt", ".pth"}


def _input_line(name: str, cfg: list, optional: bool) -> str:
    kind = cfg[0] if isinstance(cfg[0], str) else "COMBO"
    opts = cfg[1] if len(cfg) > 1 and isinstance(cfg[1], dict) else {}
    if kind == "COMBO":
        choices = opts.get("options") or (cfg[0] if isinstance(cfg[0], list) else [])
        if any(Path(str(c)).suffix.lower() in FILE_SUFFIXES for c in choices):
            choices = []     # a folder listing: differs per machine, the tooltip says where
        shown = ", ".join(f"`{c}`" for c in choices[:8]) + (" ..." if len(choices) > 8 else "")
        typ = f"choice of {shown}" if shown else "choice"
    else:
        typ = f"`{kind}`"
    extra = []
    if "default" in opts and kind != "COMBO":
        extra.append(f"default `{opts['default']}`")
    elif "default" in opts:
        extra.append(f"default `{opts['default']}`")
    if "min" in opts and "max" in opts:
        extra.append(f"range {opts['min']} to {opts['max']}")
    if optional:
        extra.append("optional")
    tip = (opts.get("tooltip") or "").strip()
    return f"- **{name}** ({typ}{'; ' + '; '.join(extra) if extra else ''}): {tip}"


def page(node_id: str, spec: dict) -> str:
    lines = [f"# {spec.get('display_name') or node_id}", "", f"`{node_id}` in *{spec['category']}*", "",
             spec.get("description", "").strip(), "", "## Inputs", ""]
    for section, optional in (("required", False), ("optional", True)):
        for name, cfg in (spec.get("input", {}).get(section) or {}).items():
            lines.append(_input_line(name, cfg, optional))
    lines += ["", "## Outputs", ""]
    tips = spec.get("output_tooltips") or []
    for i, (name, typ) in enumerate(zip(spec.get("output_name", []), spec.get("output", []))):
        tip = tips[i] if i < len(tips) and tips[i] else ""
        lines.append(f"- **{name}** (`{typ}`): {tip}")
    if spec.get("output_node"):
        lines += ["", "This is an output node: it runs whenever it is in the graph and shows its "
                      "result in the UI."]
    lines += ["", "See the pack's README for the shipped workflows that use this node.", ""]
    return "\n".join(lines)


def main() -> None:
    server = ComfyServer().start()
    try:
        info = ComfyClient(server.url).object_info()
    finally:
        server.stop()
        server.remove()
    OUT.mkdir(parents=True, exist_ok=True)
    for node_id, spec in sorted(info.items()):
        if node_id.startswith("VLOGGER_"):
            (OUT / f"{node_id}.md").write_text(page(node_id, spec))
            print(f"wrote web/docs/{node_id}.md")


if __name__ == "__main__":
    main()
