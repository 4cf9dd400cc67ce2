"""Every shipped API-format workflow runs through the real server over HTTP."""
import json

import pytest
from workflow_files import API_FILES, UI_FILES


def test_every_api_workflow_has_a_ui_twin():
    assert API_FILES, "no shipped workflow"
    assert {p.stem for p in API_FILES} == {p.stem for p in UI_FILES}


@pytest.mark.parametrize("path", API_FILES, ids=[p.stem for p in API_FILES])
def test_api_workflow_runs(comfy, path):
    prompt = json.loads(path.read_text())
    result = comfy.run(prompt)
    assert result.error is None, f"{path.name} failed: {json.dumps(result.error)[:3000]}"
    assert result.status == "success"
    files = result.files()
    assert files, f"{path.name} produced no output file"
    for f in files:
        assert len(comfy.fetch(f)) > 0
