"""Drive ComfyUI's real web frontend in headless Chromium (Debian's /usr/bin/chromium) with
Playwright: open a workflow file through the UI's own file input, queue it with the Run button,
and read back what the page saw (console errors, the prompt id it queued).
"""
from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import sync_playwright

CHROMIUM = os.environ.get("VLOGGER_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@contextmanager
def browser_page(url: str, width: int = 1600, height: int = 1000):
    """A page with the frontend loaded and its app ready; collects console errors in page.errors
    and requested URLs in page.requests."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            ctx = browser.new_context(viewport={"width": width, "height": height})
            page = ctx.new_page()
            page.errors, page.requests, page.dialogs = [], [], []
            page.on("request", lambda r: page.requests.append(r.url))
            # a native alert/confirm/prompt: recorded (ui_problems) and dismissed
            page.on("dialog", lambda d: (page.dialogs.append(f"{d.type}: {d.message}"), d.dismiss()))
            page.on("console", lambda m: m.type == "error" and page.errors.append(m.text))
            page.on("pageerror", lambda e: page.errors.append(str(e)))
            page.goto(url, wait_until="domcontentloaded", timeout=120_000)
            page.wait_for_function("() => window.app && window.app.graph && window.app.canvas",
                                   timeout=120_000)
            # the node definitions come from /object_info: wait until they are registered
            page.wait_for_function("() => Object.keys(LiteGraph.registered_node_types).length > 50",
                                   timeout=120_000)
            yield page
        finally:
            browser.close()


def _node_types(workflow: dict) -> list[str]:
    if "nodes" in workflow:  # UI format
        return sorted(n["type"] for n in workflow["nodes"])
    return sorted(v["class_type"] for v in workflow.values())  # API format


def open_workflow_file(page, path: str | Path) -> None:
    """Load a workflow through the UI's own 'Open' file input (the same code path as the menu),
    and wait until the canvas holds exactly its nodes (the start-up default graph can still be
    arriving when the page first reports ready)."""
    expected = _node_types(json.loads(Path(path).read_text()))
    page.wait_for_timeout(300)
    page.set_input_files("#comfy-file-input", str(path))
    page.wait_for_function(
        "(want) => JSON.stringify(window.app.graph._nodes.map(n => n.type).sort()) === JSON.stringify(want)",
        arg=expected, timeout=60_000)


def open_workflow_json(page, workflow: dict, name: str = "workflow.json") -> None:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / name
        p.write_text(json.dumps(workflow))
        open_workflow_file(page, p)


def missing_node_types(page) -> list[str]:
    """Node types in the loaded graph that the frontend does not know (e.g. a node not installed)."""
    return page.evaluate("""() => window.app.graph._nodes
        .filter(n => !LiteGraph.registered_node_types[n.type] || n.has_errors)
        .map(n => n.type)""")


def queue_from_ui(page, timeout_ms: int = 60_000) -> str:
    """Press the Run button and return the prompt id the frontend got back from POST /prompt."""
    page.toasts = toast_texts(page)
    # toasts (e.g. "run finished") sit over the Run button: close them first
    page.evaluate("() => document.querySelectorAll('.p-toast-message').forEach(t => t.remove())")
    with page.expect_response(lambda r: r.url.endswith("/prompt") and r.request.method == "POST",
                              timeout=timeout_ms) as info:
        page.locator('[data-testid="queue-button"] button').first.click()
    resp = info.value
    body = resp.json()
    if resp.status != 200:
        raise RuntimeError(f"the frontend's prompt was rejected ({resp.status}): {json.dumps(body)[:3000]}")
    return body["prompt_id"]


def toast_texts(page) -> list[str]:
    return page.evaluate("() => [...document.querySelectorAll('.p-toast-message')].map(t => t.innerText)")


def graph_to_api(page) -> dict:
    """The API-format prompt the frontend would send for the loaded graph."""
    return page.evaluate("async () => (await window.app.graphToPrompt()).output")


def serialize_graph(page) -> dict:
    """The graph as the frontend saves it: through JSON, so properties that are undefined are
    left out (Playwright would hand them over as None, i.e. explicit nulls, which the
    frontend's own schema check refuses when the file is opened)."""
    return page.evaluate("() => JSON.parse(JSON.stringify(window.app.graph.serialize()))")


def clear_messages(page) -> None:
    """Forget the dialogs and close the toasts seen so far (before opening the next file)."""
    page.dialogs.clear()
    page.evaluate("() => document.querySelectorAll('.p-toast-message').forEach(t => t.remove())")


def ui_problems(page) -> list[str]:
    """What the artist would see go wrong: native dialogs, open dialogs of the frontend (e.g. the
    missing-nodes one) and toasts of warning or error level (e.g. 'Invalid workflow against zod
    schema', 'Links Fixed')."""
    shown = page.evaluate("""() => [
        ...[...document.querySelectorAll('.p-dialog')].filter(d => d.offsetParent !== null)
            .map(d => 'dialog: ' + d.innerText.slice(0, 500)),
        ...[...document.querySelectorAll('.p-toast-message')]
            .filter(t => /p-toast-message-(warn|error)/.test(t.className))
            .map(t => 'toast: ' + t.innerText.slice(0, 500))]""")
    return list(page.dialogs) + shown


def node_boxes(page) -> list[dict]:
    """Each node of the loaded graph: id, type and its box [x, y, w, h] with the title bar."""
    return page.evaluate("""() => window.app.graph._nodes.map(n => {
        const b = n.getBounding ? Array.from(n.getBounding()) : Array.from(n.boundingRect);
        return {id: n.id, type: n.type, box: b.slice(0, 4)};
    })""")


def node_of_type(page, node_type: str) -> int:
    """The id of the loaded graph's first node of that type."""
    return page.evaluate("(t) => app.graph._nodes.find(n => n.type === t).id", node_type)


def widget_value(page, node_id: int, name: str):
    return page.evaluate("([id, name]) => app.graph.getNodeById(id).widgets.find(w => w.name === name).value",
                         [node_id, name])


def set_widget(page, node_id: int, name: str, value) -> None:
    """Set a widget as the UI does (its value, then its callback)."""
    page.evaluate("([id, name, v]) => { const w = app.graph.getNodeById(id).widgets.find(w => w.name === name);"
                  " w.value = v; w.callback?.(v); }", [node_id, name, value])


STAGE_GROUPS = ("Input", "Motion", "Body", "Training", "Frames", "Output")


def _overlap(a, b) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def _inside(box, group) -> bool:
    return (group[0] <= box[0] and box[0] + box[2] <= group[0] + group[2]
            and group[1] <= box[1] and box[1] + box[3] <= group[1] + group[3])


def layout_problems(page) -> list[str]:
    """What is untidy in the loaded graph: overlapping node boxes (title bars included), groups
    not titled by a stage, nodes outside every group (the note aside), links running right to
    left, not exactly one note."""
    boxes = node_boxes(page)
    groups = page.evaluate("() => (window.app.graph._groups || []).map(g => "
                           "({title: g.title, box: Array.from(g._bounding || g.bounding).slice(0, 4)}))")
    links = page.evaluate("""() => { const g = window.app.graph, out = [];
        const all = g.links instanceof Map ? [...g.links.values()] : Object.values(g.links || {});
        for (const l of all) if (l) out.push([l.origin_id, l.target_id]); return out; }""")
    out = [f"overlap: {a['type']} {[round(v) for v in a['box']]} / {b['type']} {[round(v) for v in b['box']]}"
           for i, a in enumerate(boxes) for b in boxes[i + 1:]
           if _overlap(a["box"], b["box"])]
    if not groups:
        out.append("no groups")
    out += [f"group '{g['title']}' is not a stage" for g in groups if g["title"] not in STAGE_GROUPS]
    notes = [b for b in boxes if b["type"] in ("Note", "MarkdownNote")]
    if len(notes) != 1:
        out.append(f"{len(notes)} notes (want one saying what the workflow does)")
    out += [f"{b['type']} is outside the groups" for b in boxes
            if b not in notes and not any(_inside(b["box"], g["box"]) for g in groups)]
    at = {b["id"]: b for b in boxes}
    out += [f"link {at[o]['type']} -> {at[t]['type']} runs right to left" for o, t in links
            if o in at and t in at and at[o]["box"][0] + at[o]["box"][2] > at[t]["box"][0]]
    return out


def settle(page, timeout_ms: int = 8000) -> None:
    """Wait until the nodes stop changing size (image, audio and video previews load after the
    graph and make their nodes taller)."""
    try:
        page.wait_for_function("""() => [...document.querySelectorAll('video, img')].every(
            e => e.tagName === 'IMG' ? e.complete : e.readyState >= 1)""", timeout=timeout_ms)
    except Exception:      # a preview that never loads: its node keeps the size it has
        pass
    sizes, same, waited = None, 0, 0
    while waited < timeout_ms:
        now = page.evaluate("() => JSON.stringify(window.app.graph._nodes.map(n => [n.id, ...n.size]))")
        same = same + 1 if now == sizes else 0
        if same >= 2:                # unchanged for 0.8 s
            return
        sizes = now
        page.wait_for_timeout(400)
        waited += 400
