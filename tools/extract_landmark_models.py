"""Extract the landmark and person-mask models from the mediapipe 0.10.21 wheel into
models/landmarks/, for vlogger_core/body/landmark_models.py (which runs them on LiteRT, without
mediapipe and its numpy<2 pin).

    python tools/extract_landmark_models.py [mediapipe-0.10.21-*.whl] [--out models/landmarks]

Without a wheel argument it fetches one with `pip download mediapipe==0.10.21 --no-deps` (any
platform's wheel carries the same .tflite files; the NOTICE records which one was used).

The models are Apache-2.0 (the wheel's LICENSE; its first part, the Apache License 2.0 text, is
copied as LICENSE). Models made of builtin TFLite ops are copied byte for byte. Two use
mediapipe's own custom ops, which plain LiteRT cannot run:
- face_landmark_with_attention (Landmarks2TransformMatrix, TransformTensorBilinear,
  TransformLandmarks: the crops and back-projections of its lips / eyes / iris refinement);
- selfie_segmentation (Convolution2DTransposeBias: its last, upsampling layer).
Those are cut at the custom ops into segments of builtin ops only (<model>.seg<k>.tflite, the
weights and ops unchanged) and a <model>.plan.json that lists the steps in order: a segment (its
input and output tensor names) or a custom op (its inputs, outputs and options, decoded here),
which the runtime computes in numpy. The constant inputs of custom ops (fp16 weights behind a
DEQUANTIZE) are stored as float32 in <model>.consts.safetensors. For the face model the plan also
records which mesh point each refined output replaces, read from the model's own custom-op options.

Build-time only: needs ai-edge-litert (its flatbuffer schema and utils) and flatbuffers; no
TensorFlow, no mediapipe import.
"""
from __future__ import annotations

import argparse
import copy
import glob
import hashlib
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.tools import flatbuffer_utils
from flatbuffers import flexbuffers
from safetensors.numpy import save_file

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vlogger_core.files import atomic_write  # noqa: E402
from vlogger_core.paths import SHIPPED_MODELS  # noqa: E402

MEDIAPIPE_VERSION = "0.10.21"
# file in models/landmarks/ -> path inside the wheel (the models the legacy solutions FaceMesh,
# Pose(model_complexity=1), Hands(model_complexity=1) and SelfieSegmentation(model_selection=0) run)
MODELS = {
    "face_detection_short_range.tflite": "mediapipe/modules/face_detection/face_detection_short_range.tflite",
    "face_landmark.tflite": "mediapipe/modules/face_landmark/face_landmark.tflite",
    "face_landmark_with_attention.tflite": "mediapipe/modules/face_landmark/face_landmark_with_attention.tflite",
    "pose_detection.tflite": "mediapipe/modules/pose_detection/pose_detection.tflite",
    "pose_landmark_full.tflite": "mediapipe/modules/pose_landmark/pose_landmark_full.tflite",
    "palm_detection_full.tflite": "mediapipe/modules/palm_detection/palm_detection_full.tflite",
    "hand_landmark_full.tflite": "mediapipe/modules/hand_landmark/hand_landmark_full.tflite",
    "selfie_segmentation.tflite": "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
}
FLEX_OPTION_OPS = ("Landmarks2TransformMatrix", "TransformTensorBilinear", "TransformLandmarks")
RAW_OPTION_OPS = ("Convolution2DTransposeBias",)   # options: a raw TfLiteTransposeConvParams struct


# ------------------------------------------------------------------------------ flatbuffer reading
def op_name(model, op) -> str:
    """'CUSTOM:<name>' for a custom op, else the builtin operator's number."""
    code = model.operatorCodes[op.opcodeIndex]
    builtin = max(code.builtinCode, code.deprecatedBuiltinCode)   # the schema's two fields
    if builtin == schema.BuiltinOperator.CUSTOM:
        return "CUSTOM:" + code.customCode.decode()
    return str(builtin)


def is_custom(model, op) -> bool:
    return op_name(model, op).startswith("CUSTOM:")


def tensor_name(graph, i: int) -> str:
    return graph.tensors[i].name.decode()


def is_stored(model, graph, i: int) -> bool:
    """A tensor whose value is stored in the file (a weight)."""
    b = graph.tensors[i].buffer
    return b > 0 and model.buffers[b].data is not None and len(model.buffers[b].data) > 0


def custom_options(model, op) -> dict:
    """A custom op's options as a dict (mediapipe's ops use a flexbuffer map, except the
    transposed convolution, whose options are TfLiteTransposeConvParams: padding, stride w, h)."""
    name = op_name(model, op)[len("CUSTOM:"):]
    raw = bytes(bytearray(op.customOptions)) if op.customOptions is not None else b""
    if name in FLEX_OPTION_OPS:
        return dict(flexbuffers.Loads(raw)) if raw else {}
    if name in RAW_OPTION_OPS:
        padding, stride_w, stride_h = np.frombuffer(raw, np.int32)[:3].tolist()
        return {"padding_same": padding == 1, "stride_w": stride_w, "stride_h": stride_h}
    raise NotImplementedError(f"custom op {name}: the runtime has no numpy version of it")


# ------------------------------------------------------------------------------ cutting a model
def segment(model, op_ids: list[int], inputs: list[int], outputs: list[int]):
    """A copy of `model` holding only the operators `op_ids`, with the given graph inputs and
    outputs; unused tensors, buffers and operator codes are dropped, so each segment stores only
    its own weights."""
    m = copy.deepcopy(model)
    g = m.subgraphs[0]
    ops = [g.operators[k] for k in op_ids]
    used = set(inputs) | set(outputs)
    for op in ops:
        used.update(int(i) for i in op.inputs if i >= 0)
        used.update(int(i) for i in op.outputs if i >= 0)
    keep = sorted(used)
    new_index = {old: new for new, old in enumerate(keep)}
    buffers, buffer_index, tensors = [m.buffers[0]], {0: 0}, []
    for old in keep:
        t = g.tensors[old]
        if t.buffer > 0:
            if t.buffer not in buffer_index:
                buffer_index[t.buffer] = len(buffers)
                buffers.append(m.buffers[t.buffer])
            t.buffer = buffer_index[t.buffer]
        tensors.append(t)
    codes, code_index = [], {}
    for op in ops:
        if op.opcodeIndex not in code_index:
            code_index[op.opcodeIndex] = len(codes)
            codes.append(m.operatorCodes[op.opcodeIndex])
        op.opcodeIndex = code_index[op.opcodeIndex]
        op.inputs = np.array([new_index[int(i)] if i >= 0 else -1 for i in op.inputs], np.int32)
        op.outputs = np.array([new_index[int(i)] for i in op.outputs], np.int32)
    g.tensors, g.operators = tensors, ops
    g.inputs = np.array([new_index[i] for i in inputs], np.int32)
    g.outputs = np.array([new_index[i] for i in outputs], np.int32)
    m.subgraphs, m.buffers, m.operatorCodes = [g], buffers, codes
    m.metadata, m.signatureDefs, m.metadataBuffer = [], [], []
    return m


def dequantized(model, graph, op) -> np.ndarray:
    """The value of a DEQUANTIZE of a stored fp16 tensor (the only constant-only op these models
    feed into a custom op)."""
    src = graph.tensors[op.inputs[0]]
    if op_name(model, op) != str(schema.BuiltinOperator.DEQUANTIZE) or src.type != schema.TensorType.FLOAT16:
        raise NotImplementedError(f"a custom op's constant input made by op {op_name(model, op)}")
    raw = bytes(bytearray(model.buffers[src.buffer].data))
    return np.frombuffer(raw, np.float16).astype(np.float32).reshape(list(src.shape))


def split_at_custom_ops(model, stem: str, out: Path) -> dict:
    """Schedule the graph as alternating steps: one segment of every builtin op that can run with
    the tensors at hand (transitively), then every custom op that can run; repeat. Ops computed
    from stored weights only (DEQUANTIZE of fp16 weights) are copied into each segment that
    needs them, so segments pass only activations between them. Writes the segments and returns
    the plan."""
    g = model.subgraphs[0]
    producer = {int(o): k for k, op in enumerate(g.operators) for o in op.outputs}
    consumers: dict[int, list[int]] = {}
    for k, op in enumerate(g.operators):
        for i in op.inputs:
            if i >= 0:
                consumers.setdefault(int(i), []).append(k)
    weight_only: dict[int, bool] = {}

    def is_weight_op(k: int) -> bool:                  # every input a weight or made from weights
        if k not in weight_only:
            op = g.operators[k]
            weight_only[k] = not is_custom(model, op) and all(
                i < 0 or is_stored(model, g, i) or (int(i) in producer and is_weight_op(producer[int(i)]))
                for i in op.inputs)
        return weight_only[k]

    def from_weights(i) -> bool:
        return int(i) in producer and is_weight_op(producer[int(i)])

    def weight_ops_of(k: int, acc: set) -> set:          # the weight-only ops op k depends on
        for i in g.operators[k].inputs:
            if i >= 0 and from_weights(i) and producer[int(i)] not in acc:
                acc.add(producer[int(i)])
                weight_ops_of(producer[int(i)], acc)
        return acc

    graph_outputs = {int(i) for i in g.outputs}
    available = {int(i) for i in g.inputs}
    real_ops = [k for k in range(len(g.operators)) if not is_weight_op(k)]
    done: set[int] = set()
    steps: list[dict] = []
    consts: dict[str, np.ndarray] = {}

    def ready(k: int) -> bool:
        return all(i < 0 or int(i) in available or is_stored(model, g, i) or from_weights(i)
                   for i in g.operators[k].inputs)

    while len(done) < len(real_ops):
        seg, grew = [], True
        while grew:
            grew = False
            for k in real_ops:
                if k not in done and not is_custom(model, g.operators[k]) and ready(k):
                    seg.append(k)
                    done.add(k)
                    available.update(int(o) for o in g.operators[k].outputs)
                    grew = True
        if seg:
            extra: set[int] = set()
            for k in seg:
                weight_ops_of(k, extra)
            members = set(seg) | extra
            ins = sorted({int(i) for k in members for i in g.operators[k].inputs
                          if i >= 0 and not is_stored(model, g, i) and producer.get(int(i)) not in members})
            outs = sorted({int(o) for k in seg for o in g.operators[k].outputs
                           if int(o) in graph_outputs or any(c not in members for c in consumers.get(int(o), []))})
            file = f"{stem}.seg{sum(s['kind'] == 'tflite' for s in steps)}.tflite"
            (out / file).write_bytes(bytes(flatbuffer_utils.convert_object_to_bytearray(segment(model, sorted(members), ins, outs))))
            steps.append({"kind": "tflite", "file": file, "inputs": [tensor_name(g, i) for i in ins],
                          "outputs": [tensor_name(g, i) for i in outs]})
        customs = [k for k in real_ops if k not in done and ready(k)]
        if not customs and len(done) < len(real_ops):
            raise RuntimeError(f"{stem}: the graph cannot be scheduled")
        for k in customs:
            op = g.operators[k]
            for i in op.inputs:
                if i >= 0 and from_weights(i):
                    consts[tensor_name(g, i)] = dequantized(model, g, g.operators[producer[int(i)]])
            steps.append({"kind": "custom", "op": op_name(model, op)[len("CUSTOM:"):],
                          "inputs": [tensor_name(g, i) for i in op.inputs if i >= 0],
                          "outputs": [tensor_name(g, i) for i in op.outputs],
                          "options": custom_options(model, op)})
            done.add(k)
            available.update(int(o) for o in op.outputs)
    plan = {"inputs": [tensor_name(g, i) for i in g.inputs], "outputs": [tensor_name(g, i) for i in g.outputs],
            "consts": None, "steps": steps}
    if consts:
        plan["consts"] = f"{stem}.consts.safetensors"
        save_file(consts, str(out / plan["consts"]))
    return plan


def face_refinement(model) -> dict[str, list[int]]:
    """Which point of the 478-point mesh each refined output replaces, read from the model: each
    refined output (lips, eyes) comes out of a TransformLandmarks op whose matrix a
    Landmarks2TransformMatrix op built from the mesh points in its `subset_idxs`, which are the
    points that output refines (80 lip and 71 + 71 eye points, in output order). The irises are
    new points, appended after the 468 mesh points (left 468..472, right 473..477), as
    mediapipe's face_landmark_with_attention graph maps them."""
    g = model.subgraphs[0]
    producer = {int(o): op for op in g.operators for o in op.outputs}

    def upstream(tensor, wanted: str, depth: int = 0):
        op = producer.get(int(tensor))
        if op is None or depth > 6:
            return None
        if op_name(model, op) == "CUSTOM:" + wanted:
            return op
        for i in op.inputs:
            if i >= 0 and not is_stored(model, g, i):
                hit = upstream(i, wanted, depth + 1)
                if hit is not None:
                    return hit
        return None

    out = {}
    for o in g.outputs:
        name = tensor_name(g, o)
        transform = upstream(o, "TransformLandmarks")
        if transform is None:
            continue                                         # the mesh itself and the face flag
        if "iris" in name:
            first = 468 if "left" in name else 473
            out[name] = list(range(first, first + 5))
        else:
            matrix = upstream(transform.inputs[1], "Landmarks2TransformMatrix")
            out[name] = [int(v) for v in custom_options(model, matrix)["subset_idxs"]]
    return out


# ------------------------------------------------------------------------------ the whole thing
def apache_license(text: str) -> str:
    """The Apache License 2.0 part of mediapipe's LICENSE (it goes on with the licences of source
    files that are not among the models)."""
    head = text.split("\n=====")[0].rstrip() + "\n"
    if "Apache License" not in head[:200] or not head.rstrip().endswith("limitations under the License."):
        raise RuntimeError("the wheel's LICENSE does not start with the Apache License 2.0 text")
    return head


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def extract(wheel: Path, out: Path) -> list[Path]:
    """Write models/landmarks/ from the wheel (whole or not at all); returns the files written."""
    if not wheel.name.startswith(f"mediapipe-{MEDIAPIPE_VERSION}-"):
        raise SystemExit(f"{wheel.name} is not a mediapipe {MEDIAPIPE_VERSION} wheel")
    with zipfile.ZipFile(wheel) as z:
        license_text = z.read(f"mediapipe-{MEDIAPIPE_VERSION}.dist-info/LICENSE").decode()
        blobs = {name: z.read(src) for name, src in MODELS.items()}
    notice = [
        f"The files in this folder are models of the mediapipe {MEDIAPIPE_VERSION} Python wheel",
        f"(https://pypi.org/project/mediapipe/{MEDIAPIPE_VERSION}/, Copyright Google LLC), licensed under",
        "the Apache License 2.0 (LICENSE, the first part of the wheel's own LICENSE file).",
        "",
        f"Extracted by tools/extract_landmark_models.py from {wheel.name}",
        f"  (sha256 {sha256(wheel.read_bytes())}).",
        "",
        "Source files in the wheel (sha256):",
    ]
    notice += [f"  {MODELS[name]}  {sha256(data)}" for name, data in blobs.items()]
    cut = []
    with atomic_write(out) as tmp:
        tmp.mkdir(parents=True)
        (tmp / "LICENSE").write_text(apache_license(license_text))
        for name, data in blobs.items():
            model = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
            if not any(is_custom(model, op) for op in model.subgraphs[0].operators):
                (tmp / name).write_bytes(data)                   # unchanged
                continue
            stem = name[:-len(".tflite")]
            plan = split_at_custom_ops(model, stem, tmp)
            if stem == "face_landmark_with_attention":
                plan["refinement"] = face_refinement(model)
            (tmp / f"{stem}.plan.json").write_text(json.dumps(plan, indent=1) + "\n")
            segments = [s["file"] for s in plan["steps"] if s["kind"] == "tflite"]
            ops = sorted({s["op"] for s in plan["steps"] if s["kind"] == "custom"})
            cut.append(f"  {name} -> {', '.join(segments)}, {stem}.plan.json"
                       + (f", {plan['consts']}" if plan["consts"] else "")
                       + f"\n    (cut at its custom ops {', '.join(ops)}, which the runtime computes in numpy)")
        notice += ["", "Modifications: the two models that use mediapipe's custom TFLite ops were cut at",
                   "those ops into segments of builtin ops (their weights and builtin ops unchanged), with a",
                   "plan of the steps in order and the custom ops' options and constant inputs (fp16 weights",
                   "stored as float32):"] + cut
        notice += ["", "The other models are copied unchanged.", "", "Files here (sha256):"]
        notice += [f"  {p.name}  {sha256(p.read_bytes())}" for p in sorted(tmp.iterdir())]
        (tmp / "NOTICE").write_text("\n".join(notice) + "\n")
    return sorted(out.iterdir())


def download_wheel(dest: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", f"mediapipe=={MEDIAPIPE_VERSION}", "--no-deps",
                    "--only-binary=:all:", "-d", str(dest)], check=True)
    found = sorted(glob.glob(str(dest / f"mediapipe-{MEDIAPIPE_VERSION}-*.whl")))
    if not found:
        raise SystemExit(f"pip download found no mediapipe {MEDIAPIPE_VERSION} wheel for this platform: "
                         "give a wheel's path (any platform's wheel carries the same models)")
    return Path(found[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("wheel", nargs="?", type=Path, help=f"mediapipe-{MEDIAPIPE_VERSION}-*.whl (default: pip download)")
    ap.add_argument("--out", type=Path, default=SHIPPED_MODELS / "landmarks")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wheel = a.wheel or download_wheel(Path(tmp))
        for p in extract(wheel, a.out):
            print(f"{p.stat().st_size:>9}  {p.name}")


if __name__ == "__main__":
    main()
