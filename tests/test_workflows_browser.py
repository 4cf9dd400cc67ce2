"""Every shipped UI-format workflow opens in the real frontend (headless Chromium) and runs."""
import json

import pytest
from comfyui_browser import (
    browser_page,
    graph_to_api,
    missing_node_types,
    open_workflow_file,
    queue_from_ui,
)
from workflow_files import UI_FILES


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
def test_ui_workflow_runs_in_browser(comfy, page, path):
    open_workflow_file(page, path)
    assert missing_node_types(page) == [], f"{path.name} names node types the server lacks"
    # the UI file and the shipped API file describe the same graph
    api_twin = path.parent / "api" / path.name
    assert _strip(graph_to_api(page)) == _strip(json.loads(api_twin.read_text()))
    prompt_id = queue_from_ui(page)
    result = comfy.wait(prompt_id)
    assert result.error is None, f"{path.name} failed in the UI: {json.dumps(result.error)[:3000]}"
    assert result.status == "success" and result.files()
