"""A hostile user through the real server: every literal input of every VLOGGER node in every
shipped API workflow is mutated (wrong type, NaN, infinity, min-1, max+1, huge, negative, "",
10k characters, an unknown combo value, path traversal). Each mutation must be refused with
HTTP 400 (or an execution error) whose message names the node and the input; the server must
still answer afterwards and no half-written file may be left in output/.

Refusals happen in each node's validate_inputs (nodes/common.py VloggerNode), so no heavy node
runs: the whole set is a few hundred POST /prompt calls."""
from __future__ import annotations

import json
import math

import pytest
import requests
from comfyui_server import PromptRejected
from workflow_files import API_FILES

TEN_K = "x" * 10_000


def _is_link(v) -> bool:
    return isinstance(v, list) and len(v) == 2 and isinstance(v[1], int)


def _spec(info: dict, class_type: str, name: str) -> tuple[object, dict]:
    node = info[class_type]["input"]
    spec = node.get("required", {}).get(name) or node.get("optional", {}).get(name)
    assert spec is not None, (class_type, name)
    return spec[0], (spec[1] if len(spec) > 1 else {})


def _must_refuse(kind, opts: dict, name: str, value) -> bool:
    """Whether `value` is invalid for this input by the rules the issue states (independent of
    the node's own checks): out of range or not finite numbers, wrong types, unknown choices,
    empty or over-long strings, paths that leave the folder."""
    if isinstance(value, list):
        return True                                       # not a [node, slot] link: refused
    if kind in ("INT", "FLOAT"):
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                return True
        if not math.isfinite(value):
            return True
        if kind == "INT" and not float(value).is_integer():
            return False                                  # ComfyUI rounds it down: still valid
        lo, hi = opts.get("min"), opts.get("max")
        return (lo is not None and value < lo) or (hi is not None and value > hi)
    if kind == "COMBO":
        if opts.get("audio_upload") or opts.get("image_upload") or opts.get("video_upload"):
            return True                                   # every mutation is not an uploaded file
        return value not in opts.get("options", [])
    if kind == "STRING":
        if not isinstance(value, str) or not value.strip():
            return True
        limit = 20_000 if opts.get("multiline") else 1_000
        if len(value) > limit:
            return True
        named = name.endswith("prefix") or name.endswith("_name")
        return named and (".." in value.split("/") or value.startswith("/") or len(value) > 120)
    return False


def _mutations(kind, opts: dict) -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = [("wrong type (list)", [1, 2, 3])]
    if kind in ("INT", "FLOAT"):
        out += [("not a number", "abc"), ("NaN", "nan"), ("infinity", "inf"), ("-infinity", "-inf"),
                ("huge", 10 ** 30 if kind == "INT" else 1e30), ("negative", -12345)]
        if kind == "FLOAT":
            out += [("NaN (JSON)", float("nan"))]
        if opts.get("min") is not None:
            out.append(("min-1", opts["min"] - 1))
        if opts.get("max") is not None:
            out.append(("max+1", opts["max"] + 1))
    elif kind == "COMBO":
        out += [("unknown choice", "no_such_choice"), ("number", 12345), ("empty", ""),
                ("10k characters", TEN_K), ("path traversal", "../../../../etc/passwd"),
                ("dict", {"a": 1})]
    elif kind == "STRING":
        out += [("empty", ""), ("10k characters", TEN_K), ("30k characters", "y" * 30_000),
                ("path traversal", "../../escape/x"), ("absolute", "/tmp/vlogger_escape"),
                ("long name", "n" * 300)]
    return out


def _cases(info: dict) -> list[tuple[str, str, str, str, object]]:
    """(workflow, node id, input, mutation, value), each (class, input, mutation) once: the
    same node in ten workflows is checked in the first that has it."""
    seen, cases = set(), []
    for path in API_FILES:
        prompt = json.loads(path.read_text())
        for nid, node in prompt.items():
            ct = node["class_type"]
            if not ct.startswith("VLOGGER_"):
                continue
            for name, value in node["inputs"].items():
                if _is_link(value):
                    continue
                kind, opts = _spec(info, ct, name)
                if isinstance(kind, list):
                    kind, opts = "COMBO", {**opts, "options": kind}
                if kind == "BOOLEAN":
                    continue     # ComfyUI itself turns any value into a bool before a node sees it
                for label, bad in _mutations(kind, opts):
                    key = (ct, name, label)
                    if key in seen or not _must_refuse(kind, opts, name, bad):
                        continue
                    seen.add(key)
                    cases.append((path.stem, nid, name, label, bad))
    return cases


def _queue(comfy, prompt: dict) -> str:
    """POST /prompt with the JSON as a hostile client may send it (NaN and Infinity literals
    included, which requests' own encoder refuses)."""
    body = json.dumps({"prompt": prompt, "client_id": comfy.client_id}, allow_nan=True)
    r = requests.post(comfy.url + "/prompt", data=body, headers={"Content-Type": "application/json"},
                      timeout=60)
    if r.status_code == 400:
        raise PromptRejected(r.json())
    r.raise_for_status()
    if r.json().get("node_errors"):
        raise PromptRejected(r.json())
    return r.json()["prompt_id"]


def _named(text: str, class_type: str, name: str) -> bool:
    return f"[{class_type}] input '{name}'" in text and "Fix:" in text


def _rejection_names(body: dict, nid: str, class_type: str, name: str) -> bool:
    """HTTP 400: the node's errors carry our message, or ComfyUI's own error for that input."""
    errors = body.get("node_errors", {}).get(nid, {}).get("errors", [])
    for e in errors:
        if _named(str(e.get("details", "")), class_type, name):
            return True
        if e.get("extra_info", {}).get("input_name") == name and e.get("type") in (
                "bad_linked_input", "invalid_input_type"):
            return True
    return False


def test_every_literal_input_refuses_bad_values(comfy):
    info = comfy.object_info()
    cases = _cases(info)
    assert len(cases) > 150, len(cases)          # the mutation set is not empty by accident
    print(f"{len(cases)} mutations")
    failures = []
    for wf, nid, name, label, bad in cases:
        prompt = comfy.workflow(wf)
        ct = prompt[nid]["class_type"]
        prompt[nid]["inputs"][name] = bad
        try:
            pid = _queue(comfy, prompt)
        except PromptRejected as e:
            if not _rejection_names(e.body, nid, ct, name):
                failures.append((wf, ct, name, label, json.dumps(e.body)[:400]))
            continue
        res = comfy.wait(pid, timeout=120)     # queued: it must fail naming the node and input
        if res.error is None or not _named(str(res.error), ct, name):
            failures.append((wf, ct, name, label, f"ran: {str(res.error)[:300]}"))
    assert not failures, f"{len(failures)} of {len(cases)} mutations not refused by name:\n" + \
        "\n".join(map(str, failures[:40]))
    # every VLOGGER node of the shipped workflows that has a literal input had one mutated
    with_literals = {n["class_type"] for p in API_FILES for n in json.loads(p.read_text()).values()
                     if n["class_type"].startswith("VLOGGER_")
                     and any(not _is_link(v) for v in n["inputs"].values())}
    mutated = {json.loads(next(p for p in API_FILES if p.stem == wf).read_text())[nid]["class_type"]
               for wf, nid, *_ in cases}
    assert with_literals <= mutated, with_literals - mutated
    # the server still answers and nothing half-written is left behind
    assert comfy.object_info()["VLOGGER_LoadSpeech"]
    partial = [p for p in comfy.output_dir.rglob("*") if ".partial" in p.name]
    assert not partial, partial


def test_every_node_uses_the_shared_checks():
    """Each VLOGGER node class (a class with define_schema in nodes/nodes_*.py) derives from
    nodes/common.py's VloggerNode, so its combo, number and string inputs are checked from its
    own schema at queue time and at run time."""
    import ast
    from pathlib import Path

    found, missing = [], []
    for path in sorted((Path(__file__).resolve().parent.parent / "nodes").glob("nodes_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(
                    isinstance(f, ast.FunctionDef) and f.name == "define_schema" for f in node.body):
                found.append(node.name)
                if not any(isinstance(b, ast.Name) and b.id == "VloggerNode" for b in node.bases):
                    missing.append(f"{path.name}:{node.name}")
    assert len(found) >= 20, found
    assert not missing, missing


@pytest.mark.parametrize("value, problem", [
    (95001, "out of range"), (44101, "not an output rate"), (7999, "out of range"), (1e30, "out of range"),
    (-12345, "out of range"), ("nan", "not a whole number"), ("16k", "not a whole number")])
def test_load_speech_rates_are_refused_at_once(comfy, value, problem):
    """The issue's rates (sample_rate 95,001 once OOM-killed the server) are refused at /prompt."""
    prompt = comfy.workflow("load_speech")
    prompt["1"]["inputs"]["sample_rate"] = value
    with pytest.raises(PromptRejected) as e:
        _queue(comfy, prompt)
    text = json.dumps(e.value.body)
    assert "[VLOGGER_LoadSpeech] input 'sample_rate'" in text and problem in text and "Fix:" in text, text


@pytest.mark.parametrize("value", [float("nan"), "nan", float("inf"), -1e30])
def test_load_speech_silence_db_must_be_finite_and_in_range(comfy, value):
    prompt = comfy.workflow("load_speech")
    prompt["1"]["inputs"]["silence_db"] = value
    with pytest.raises(PromptRejected) as e:
        _queue(comfy, prompt)
    text = json.dumps(e.value.body)
    assert "[VLOGGER_LoadSpeech] input 'silence_db'" in text and "between -80.0 and -10.0" in text, text
