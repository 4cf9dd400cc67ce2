"""Every shipped UI-format workflow opens in the real frontend (headless Chromium) and runs."""
import json

import pytest
from comfyui_browser import (
    browser_page,
    clear_messages,
    graph_to_api,
    layout_problems,
    missing_node_types,
    open_workflow_file,
    queue_from_ui,
    settle,
    ui_problems,
)
from comfyui_server import PromptRejected
from workflow_files import ABSENT_WEIGHTS, UI_FILES, weights_problem


@pytest.fixture(scope="module")
def page(comfy):
    with browser_page(comfy.url) as p:
        yield p


# widgets the frontend adds for its own display (the audio player, the upload button, the video preview)
UI_ONLY_INPUTS = {"audioUI", "upload", "video-preview"}


def _strip(prompt: dict) -> dict:
    return {k: {"class_type": v["class_type"],
                "inputs": {i: x for i, x in v["inputs"].items() if i not in UI_ONLY_INPUTS}}
            for k, v in prompt.items()}


@pytest.mark.parametrize("path", UI_FILES, ids=[p.stem for p in UI_FILES])
def test_ui_workflow_opens_clean_and_tidy(page, path):
    """Opened as an artist opens it: no alert, dialog or warning/error toast (e.g. the zod schema
    alert that explicit nulls caused), no overlapping nodes, every node in a group titled by its
    stage, links running left to right, and a note saying what the workflow does."""
    clear_messages(page)
    open_workflow_file(page, path)
    settle(page)                         # previews loaded: the nodes' final sizes
    assert ui_problems(page) == [], f"{path.name} does not open clean"
    assert layout_problems(page) == [], path.name
    ui = json.loads(path.read_text())
    note = next(n for n in ui["nodes"] if n["type"] in ("Note", "MarkdownNote"))
    assert len(str(note.get("widgets_values", [""])[0])) > 40, "the note says what the workflow does"


@pytest.mark.parametrize("path", UI_FILES, ids=[p.stem for p in UI_FILES])
def test_ui_workflow_runs_in_browser(comfy, page, path):
    open_workflow_file(page, path)
    assert missing_node_types(page) == [], f"{path.name} names node types the server lacks"
    # the UI file and the shipped API file describe the same graph
    api_twin = path.parent / "api" / path.name
    assert _strip(graph_to_api(page)) == _strip(json.loads(api_twin.read_text()))
    if path.stem in ABSENT_WEIGHTS:   # the UI's prompt is refused for exactly the absent weights
        ui_prompt = graph_to_api(page)
        with pytest.raises(PromptRejected) as rejected:
            comfy.queue(ui_prompt)
        problem = weights_problem(rejected.value.body, ABSENT_WEIGHTS[path.stem], ui_prompt)
        assert problem is None, f"{path.name}: {problem}"
        return
    prompt_id = queue_from_ui(page)
    result = comfy.wait(prompt_id)
    assert result.error is None, f"{path.name} failed in the UI: {json.dumps(result.error)[:3000]}"
    assert result.status == "success" and result.files()
    page.wait_for_timeout(300)
    assert ui_problems(page) == [], f"{path.name}: the run showed an alert or an error"
