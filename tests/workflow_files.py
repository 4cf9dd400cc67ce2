"""The shipped workflows, as pytest parameters."""
from pathlib import Path

WORKFLOWS = Path(__file__).resolve().parent.parent / "workflows"
API_FILES = sorted((WORKFLOWS / "api").glob("*.json"))
UI_FILES = sorted(WORKFLOWS.glob("*.json"))

# Shipped workflows for video models whose weights are not here (ComfyUI's own Wan 2.2 / SD 1.5
# files, tens of GB): the files their loaders name, which scripts/fetch_models.py downloads.
# Queued as shipped, ComfyUI must refuse them for exactly these files, in the loaders' own
# "value not in list" errors, and for nothing else (tests/test_workflows_api.py, _browser.py).
from vlogger_core.bridge.model_fetch import MODEL_SETS  # noqa: E402

ABSENT_WEIGHTS = {name: {f.name for f in files} for name, files in MODEL_SETS.items()}


# V3 loaders whose combos ComfyUI 0.3.75 does not check when a prompt is queued: their file is
# refused when they run, by the loader itself (tests/test_bridge_workflows.py checks that error)
RUN_TIME_LOADERS = {"AudioEncoderLoader"}


def weights_problem(body: dict, files: set[str], prompt: dict) -> str | None:
    """What is wrong with a /prompt rejection `body` of `prompt`, a workflow whose only missing
    pieces are `files`; None when the loaders' own errors name exactly them (files of
    RUN_TIME_LOADERS excepted: ComfyUI does not look at them before running)."""
    errors = body.get("node_errors") or {}
    named = set()
    for node, entry in errors.items():
        for e in entry.get("errors", []):
            value = (e.get("extra_info") or {}).get("received_value")
            if e.get("type") != "value_not_in_list" or value not in files:
                return f"node {node} ({entry.get('class_type')}) failed for another reason: {e}"
            named.add(value)
    late = {v["inputs"][k] for v in prompt.values() if v["class_type"] in RUN_TIME_LOADERS
            for k in v["inputs"] if v["inputs"][k] in files}
    if named | late != files or named & late:
        return f"the loaders named {sorted(named)} (+ {sorted(late)} when run), not {sorted(files)}"
    return None
