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
            page.errors, page.requests = [], []
            page.on("request", lambda r: page.requests.append(r.url))
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
    return page.evaluate("() => window.app.graph.serialize()")
