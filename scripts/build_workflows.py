"""Build the UI-format workflows (what ComfyUI's "Open" loads) from the API-format ones.

Each workflows/api/NAME.json is opened in the REAL frontend (headless Chromium, a real server
with this pack), laid out left to right in titled groups by stage (Input, Motion, Body, Training,
Frames, Output; columns by depth inside a stage, no overlaps) with a note saying what it does,
and saved as workflows/NAME.json through JSON as the frontend saves it (no explicit nulls), so
the UI files carry exactly the widgets and links the frontend itself writes. Any API file works:
a node's stage comes from its category.

    .venv/bin/python scripts/build_workflows.py [NAME ...]
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from comfyui_browser import (  # noqa: E402
    browser_page,
    clear_messages,
    layout_problems,
    missing_node_types,
    open_workflow_file,
    serialize_graph,
    settle,
    ui_problems,
)
from comfyui_server import ComfyServer  # noqa: E402
from make_tiny_video_model import make_test_models  # noqa: E402

REPO = Path(__file__).resolve().parent.parent

# Stages, left to right; each gets a titled group. A node's stage comes from its category
# (VLOGGER/<area>), else: an output node -> Output, a node without inputs -> Input, any other
# node follows its inputs. No node sits left of a node it takes an input from.
STAGES = ["Input", "Motion", "Body", "Training", "Frames", "Output"]
AREA_STAGE = {"audio": "Input", "motion": "Motion", "body": "Body", "training": "Training",
              "dataset": "Training", "bridge": "Frames", "render": "Frames", "frames": "Frames",
              "video": "Frames", "edit": "Frames", "reenact": "Frames", "output": "Output"}
GAP_X, GAP_Y, GROUP_GAP, PAD, GROUP_TITLE = 50, 40, 90, 30, 50
# A video preview sizes its node when the video has loaded, which may be after the layout (or
# after the file is opened): such a node goes last in its column with this much room below it.
MEDIA_SLACK = 300
NOTE_SIZE = (560, 150)

# What each shipped workflow does (the note node's text); a workflow not listed gets one made
# from its stages and nodes.
DESCRIPTIONS = {
    "talking_video": "The default: one photo + a speech file -> a talking, moving video (MP4 with the "
                     "speech). Body fit of the photo, motion from the speech, frames without diffusion "
                     "weights. For speech over a few minutes use talking_video_long (streams, flat memory).",
    "talking_video_long": "Long speech: photo + speech -> MP4 streamed window by window by VLOGGER Talking "
                          "Video, so memory stays flat at any length.",
    "talking_video_from_text": "Type a text: offline text-to-speech, motion from that speech, a talking "
                               "video of the photo saying it.",
    "talking_video_from_motion": "Render a saved motion (.npz) on the photo with the speech muxed in.",
    "fit_reference": "Fit the 3D body to a photo and show the fitted mesh over it (check or correct "
                     "the fit with the overrides).",
    "load_speech": "Load a speech file, trim silence, normalise loudness and resample it.",
    "text_to_speech": "Speak a text offline (espeak-ng) and save the audio.",
    "motion_from_speech": "Speech -> per-frame face and body motion; preview it as a plot and save it as .npz.",
    "render_controls": "Render the 2D controls of the body (dense, semantic, warped photo, masks) for a "
                       "motion, as the video diffusion stage takes them.",
    "diffusion_video": "The paper's stage 2: controls + the photo -> video with the diffusion video model "
                       "(temporal outpainting to any length).",
    "diffusion_stages": "The diffusion stage node by node: one window, temporal outpainting, then "
                        "super-resolution, written to MP4.",
    "personalize_lora": "Personalise the video model to one person with a LoRA trained on a short clip "
                        "of them, then generate with it.",
    "prepare_and_finetune": "Make a training set from footage of a speaker and fine-tune the motion model "
                            "on it, then sample motion with the result.",
    "redub_video": "Redub a video: new speech (text-to-speech) and the mouth region inpainted to match it.",
}


def _stage_layout(nodes: list[dict]) -> tuple[dict, list[dict]]:
    """Positions {node id: [x, y]} and groups [{title, bounding}] for `nodes` (each: id, size,
    category, output, inputs = ids it takes inputs from, title_h), left to right by stage, then
    by depth inside a stage; nodes stacked in their column with their own heights."""
    by_id = {n["id"]: n for n in nodes}
    rank: dict = {}

    def stage_rank(n):
        if n["id"] in rank:
            return rank[n["id"]]
        rank[n["id"]] = 0
        area = n["category"].split("/")[1] if n["category"].startswith("VLOGGER/") else None
        own = AREA_STAGE.get(area, "Frames") if area else (
            "Output" if n["output"] else ("Input" if not n["inputs"] else None))
        ups = [stage_rank(by_id[i]) for i in n["inputs"] if i in by_id]
        r = max([STAGES.index(own) if own else 0, *ups])
        rank[n["id"]] = r
        return r

    depth: dict = {}

    def local_depth(n):
        if n["id"] in depth:
            return depth[n["id"]]
        depth[n["id"]] = 0
        same = [local_depth(by_id[i]) + 1 for i in n["inputs"] if i in by_id and rank[i] == rank[n["id"]]]
        depth[n["id"]] = max(same, default=0)
        return depth[n["id"]]

    for n in nodes:
        stage_rank(n)
    for n in nodes:
        local_depth(n)
    title_h = max(n["title_h"] for n in nodes)
    top = 40 + NOTE_SIZE[1] + GROUP_GAP              # groups start below the note
    pos, groups, x = {}, [], 60
    for r in sorted(set(rank.values())):
        left, bottom = x, top + GROUP_TITLE
        members = [n for n in nodes if rank[n["id"]] == r]
        cx = left + PAD
        for d in sorted({depth[n["id"]] for n in members}):
            col = sorted((n for n in members if depth[n["id"]] == d),
                         key=lambda n: (n.get("media", False), str(n["id"])))
            y = top + GROUP_TITLE + PAD
            for n in col:
                pos[n["id"]] = [cx, y + title_h]
                y += title_h + n["size"][1] + GAP_Y + (MEDIA_SLACK if n.get("media") else 0)
            bottom = max(bottom, y - GAP_Y)
            cx += max(n["size"][0] for n in col) + GAP_X
        right = cx - GAP_X + PAD
        groups.append({"title": STAGES[r], "bounding": [left, top, right - left, bottom + PAD - top]})
        x = right + GROUP_GAP
    height = max(g["bounding"][3] for g in groups)
    for g in groups:                                   # one height for all: a tidy row of stages
        g["bounding"][3] = height
    return pos, groups


def _note_text(name: str, nodes: list[dict], groups: list[dict]) -> str:
    if name in DESCRIPTIONS:
        text = DESCRIPTIONS[name]
    else:
        titles = [n["title"] for n in nodes]
        text = f"{name.replace('_', ' ').capitalize()}: " + " -> ".join(dict.fromkeys(titles)) + "."
    return text + "\n\nStages, left to right: " + ", ".join(g["title"] for g in groups) + \
        ". Node help: select a node and press the (i) button."


NOTE_TITLE = "About this workflow"
NODES_JS = """() => window.app.graph._nodes.filter(n => n.title !== "About this workflow").map(n => {
  // the size the node takes when the file is opened again (at least what its widgets need)
  const need = n.computeSize ? n.computeSize() : n.size;
  n.setSize([Math.max(n.size[0], need[0]), Math.max(n.size[1], need[1])]);
  return {
  id: n.id, type: n.type, title: n.title, size: Array.from(n.size),
  media: (n.widgets || []).some(w => /video/i.test(w.name || "") || /video/i.test(w.type || "")),
  title_h: LiteGraph.NODE_TITLE_HEIGHT,
  category: (n.constructor.nodeData && n.constructor.nodeData.category) || n.constructor.category || "",
  output: !!(n.constructor.nodeData && n.constructor.nodeData.output_node),
  inputs: (n.inputs || []).filter(i => i.link != null).map(i => {
    const l = window.app.graph.links[i.link] ?? window.app.graph.links.get?.(i.link);
    return l ? l.origin_id : null;
  }).filter(x => x != null),
};})"""

APPLY_JS = """(arg) => {
  const g = window.app.graph;
  for (const n of g._nodes) { const p = arg.pos[String(n.id)]; if (p) n.pos = p; }
  for (const gr of [...(g._groups || [])]) g.remove(gr);
  for (const n of [...g._nodes]) if (n.title === arg.note_title) g.remove(n);
  for (const spec of arg.groups) {
    const gr = new LiteGraph.LGraphGroup(spec.title);
    gr.pos = [spec.bounding[0], spec.bounding[1]];
    gr.size = [spec.bounding[2], spec.bounding[3]];
    g.add(gr);
  }
  const note = LiteGraph.createNode("Note");
  note.title = arg.note_title;
  note.widgets[0].value = arg.note;
  g.add(note);
  note.pos = [60, 40 + LiteGraph.NODE_TITLE_HEIGHT];
  note.size = arg.note_size;
  // the whole workflow in view (its previews then load and the file opens showing all of it)
  const c = window.app.canvas, el = c.canvas;
  let x2 = 0, y2 = 0;
  for (const spec of arg.groups) {
    x2 = Math.max(x2, spec.bounding[0] + spec.bounding[2]);
    y2 = Math.max(y2, spec.bounding[1] + spec.bounding[3]);
  }
  const scale = Math.min(1, el.clientWidth / (x2 + 80), el.clientHeight / (y2 + 80));
  c.ds.scale = scale;
  c.ds.offset = [20 / scale, 20 / scale];
  g.setDirtyCanvas(true, true);
}"""


def lay_out(page, name: str) -> None:
    """Stage groups, columns and a note on the graph loaded in `page` (see _stage_layout)."""
    nodes = page.evaluate(NODES_JS)
    pos, groups = _stage_layout(nodes)
    page.evaluate(APPLY_JS, {"pos": {str(k): v for k, v in pos.items()}, "groups": groups,
                             "note_title": NOTE_TITLE,
                             "note": _note_text(name, nodes, groups),
                             "note_size": [NOTE_SIZE[0], NOTE_SIZE[1] - 30]})


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
                clear_messages(page)
                open_workflow_file(page, api)
                missing = missing_node_types(page)
                if missing:
                    raise SystemExit(f"{api.name}: node types unknown to the server: {missing}")
                out = REPO / "workflows" / api.name
                for attempt in range(4):
                    # lay out, save, and open the saved file as an artist would: a preview that
                    # loads late grows its node, so the reopened graph is laid out again
                    settle(page)
                    lay_out(page, api.stem)
                    settle(page)
                    ui = serialize_graph(page)
                    ui["extra"] = {**ui.get("extra", {}), "vlogger_source": f"workflows/api/{api.name}"}
                    out.write_text(json.dumps(ui, indent=1) + "\n")
                    clear_messages(page)
                    open_workflow_file(page, out)
                    settle(page)
                    problems = ui_problems(page) + layout_problems(page)
                    if not problems:
                        break
                if problems:
                    raise SystemExit(f"{out.name} does not open clean: {problems}")
                print(f"wrote {out.relative_to(REPO)} ({len(ui['nodes'])} nodes, "
                      f"groups {[g['title'] for g in ui.get('groups', [])]})")
    finally:
        server.stop()
        server.remove()


if __name__ == "__main__":
    build(sys.argv[1:])
