"""Build the UI-format workflows (what ComfyUI's "Open" loads) from the API-format ones.

Each workflows/api/NAME.json is opened in the REAL frontend (headless Chromium, a real server
with this pack), laid out in columns by graph depth, and saved as workflows/NAME.json, so the
UI files carry exactly the widgets and links the frontend itself writes.

    .venv/bin/python scripts/build_workflows.py [NAME ...]
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from comfyui_browser import (  # noqa: E402
    browser_page,
    missing_node_types,
    open_workflow_file,
    serialize_graph,
)
from comfyui_server import ComfyServer  # noqa: E402
from make_tiny_video_model import make_test_models  # noqa: E402

REPO = Path(__file__).resolve().parent.parent

# Columns by longest path from a source node; nodes in a column stacked with their own heights.
LAYOUT_JS = """() => {
  const g = window.app.graph, nodes = g._nodes, depth = {};
  const byId = Object.fromEntries(nodes.map(n => [n.id, n]));
  const d = (n) => {
    if (depth[n.id] !== undefined) return depth[n.id];
    depth[n.id] = 0;
    let best = 0;
    for (const inp of n.inputs || []) {
      if (inp.link == null) continue;
      const link = g.links[inp.link] ?? g.links.get?.(inp.link);
      if (link && byId[link.origin_id]) best = Math.max(best, d(byId[link.origin_id]) + 1);
    }
    return (depth[n.id] = best);
  };
  nodes.forEach(d);
  const colY = {};
  const colW = {};
  nodes.forEach(n => { colW[depth[n.id]] = Math.max(colW[depth[n.id]] || 0, n.size[0]); });
  let x = 50; const colX = {};
  Object.keys(colW).map(Number).sort((a, b) => a - b).forEach(c => { colX[c] = x; x += colW[c] + 60; });
  nodes.sort((a, b) => a.id - b.id).forEach(n => {
    const c = depth[n.id];
    n.pos = [colX[c], colY[c] || 80];
    colY[c] = (colY[c] || 80) + n.size[1] + 70;
  });
  g.setDirtyCanvas(true, true);
}"""


def build(names: list[str]) -> None:
    api_files = sorted((REPO / "workflows" / "api").glob("*.json"))
    if names:
        api_files = [p for p in api_files if p.stem in names]
    server = ComfyServer()
    make_test_models(server.models_dir)   # the diffusion workflow names the tests' tiny models
    server.start()
    try:
        with browser_page(server.url) as page:
            for api in api_files:
                open_workflow_file(page, api)
                missing = missing_node_types(page)
                if missing:
                    raise SystemExit(f"{api.name}: node types unknown to the server: {missing}")
                page.evaluate(LAYOUT_JS)
                ui = serialize_graph(page)
                ui["extra"] = {**ui.get("extra", {}), "vlogger_source": f"workflows/api/{api.name}"}
                out = REPO / "workflows" / api.name
                out.write_text(json.dumps(ui, indent=1) + "\n")
                print(f"wrote {out.relative_to(REPO)} ({len(ui['nodes'])} nodes)")
    finally:
        server.stop()
        server.remove()


if __name__ == "__main__":
    build(sys.argv[1:])
