"""Getting the weights a shipped workflow needs, with huggingface_hub, into ComfyUI's model folders.

MODEL_SETS names, per shipped workflow, the files as ComfyUI's own templates name them (the
file names the loaders list, the Hugging Face repositories and the model folder each goes in).
`fetch` downloads each file with the real client (`hf_hub_download`, honouring HF_ENDPOINT,
HF_TOKEN and HF_HUB_OFFLINE), resuming a partial download where it stopped, reporting bytes as
progress, checking the file against the hub's sha256 (the LFS ETag) or a pinned one, and only
then moving it into its folder under its final name (files.commit_partial): a folder never holds
half a model. A file already in its folder is kept without asking the hub (offline too). The
core takes the target folders ({ComfyUI folder name: path}); the node and
scripts/fetch_models.py find them.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..callbacks import Interrupt, Progress, check, report
from ..errors import VloggerError
from ..files import commit_partial

STAGING = ".vlogger_download"       # inside each target folder (same disk: the final move is a rename)
SHA256 = re.compile(r"^[0-9a-f]{64}$")


class FetchError(VloggerError):
    """A model file that could not be fetched (offline, missing on the hub, corrupt)."""


@dataclass(frozen=True)
class ModelFile:
    repo_id: str
    path: str                   # path inside the repository
    folder: str                 # ComfyUI model folder ("diffusion_models", "vae", ...)
    sha256: str | None = None   # pinned checksum; None: the hub's own (LFS ETag)
    revision: str = "main"

    @property
    def name(self) -> str:
        """The file name the ComfyUI loader lists."""
        return self.path.rsplit("/", 1)[-1]

    def url(self, endpoint: str = "https://huggingface.co") -> str:
        return f"{endpoint.rstrip('/')}/{self.repo_id}/resolve/{self.revision}/{self.path}"


_WAN21 = "Comfy-Org/Wan_2.1_ComfyUI_repackaged"
_WAN22 = "Comfy-Org/Wan_2.2_ComfyUI_Repackaged"
TEXT_ENCODER = ModelFile(_WAN21, "split_files/text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors", "text_encoders")
WAN_VAE = ModelFile(_WAN22, "split_files/vae/wan_2.1_vae.safetensors", "vae")
MODEL_SETS: dict[str, list[ModelFile]] = {
    # ComfyUI's video_wan2_2_14B_animate template
    "wan_animate": [
        ModelFile("Kijai/WanVideo_comfy_fp8_scaled", "Wan22Animate/Wan2_2-Animate-14B_fp8_e4m3fn_scaled_KJ.safetensors",
                  "diffusion_models"),
        TEXT_ENCODER, WAN_VAE,
        ModelFile(_WAN21, "split_files/clip_vision/clip_vision_h.safetensors", "clip_vision"),
        ModelFile("Kijai/WanVideo_comfy", "Lightx2v/lightx2v_I2V_14B_480p_cfg_step_distill_rank64_bf16.safetensors",
                  "loras"),
    ],
    # ComfyUI's video_wan2_2_14B_s2v template
    "wan_s2v": [
        ModelFile(_WAN22, "split_files/diffusion_models/wan2.2_s2v_14B_fp8_scaled.safetensors", "diffusion_models"),
        TEXT_ENCODER, WAN_VAE,
        ModelFile(_WAN22, "split_files/audio_encoders/wav2vec2_large_english_fp16.safetensors", "audio_encoders"),
        ModelFile(_WAN22, "split_files/loras/wan2.2_t2v_lightx2v_4steps_lora_v1.1_high_noise.safetensors", "loras"),
    ],
    # ComfyUI's video_wan2_2_5B_fun_control template (24 fps)
    "wan_fun_control": [
        ModelFile(_WAN22, "split_files/diffusion_models/wan2.2_fun_control_5B_bf16.safetensors", "diffusion_models"),
        TEXT_ENCODER,
        ModelFile(_WAN22, "split_files/vae/wan2.2_vae.safetensors", "vae"),
    ],
    # ComfyUI's SD 1.5 templates (checkpoint) and its pose ControlNet example
    "sd15_openpose": [
        ModelFile("Comfy-Org/stable-diffusion-v1-5-archive", "v1-5-pruned-emaonly-fp16.safetensors", "checkpoints"),
        ModelFile("comfyanonymous/ControlNet-v1-1_fp16_safetensors", "control_v11p_sd15_openpose_fp16.safetensors",
                  "controlnet"),
    ],
}


def model_set(name: str) -> list[ModelFile]:
    if name not in MODEL_SETS:
        raise FetchError(f"no model list named {name!r}", "workflow", f"use one of {sorted(MODEL_SETS)}")
    return MODEL_SETS[name]


def parse_file(spec: str, folder: str) -> ModelFile:
    """'owner/repo/path/in/repo.safetensors' (optionally '@revision' at the end) -> ModelFile,
    e.g. a VLOGGER video model someone published."""
    spec = spec.strip()
    rev = "main"
    if "@" in spec:
        spec, rev = spec.rsplit("@", 1)
    parts = spec.split("/")
    if len(parts) < 3 or not all(parts):
        raise FetchError(f"{spec!r} is not 'owner/repository/path/to/file'", "spec",
                         "write the repository and the file, e.g. someone/vlogger-video/model.safetensors")
    if not parts[-1].endswith(".safetensors") and not parts[-1].endswith(".json"):
        raise FetchError(f"{parts[-1]!r} is not a .safetensors (or .json) file", "spec",
                         "fetch safetensors weights only (pickled .ckpt / .bin / .pt files are refused)")
    return ModelFile("/".join(parts[:2]), "/".join(parts[2:]), folder, None, rev)


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def offline_fix(files: list[ModelFile], dirs: dict[str, Path]) -> str:
    lines = [f"{f.url()} -> {dirs.get(f.folder, f.folder)}/{f.name}" for f in files]
    return ("connect this machine to the internet (or set HF_ENDPOINT to a mirror; unset HF_HUB_OFFLINE), "
            "or download by hand: " + "; ".join(lines))


def sha256_of(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                return h.hexdigest()
            h.update(b)


def _progress_class(progress: Progress, done_before: list[int], total: int):
    """A tqdm class for hf_hub_download that reports the bytes of all files as one progress."""
    from huggingface_hub.utils import tqdm as hf_tqdm

    class Bar(hf_tqdm):
        def update(self, n=1):
            out = super().update(n)
            report(progress, done_before[0] + int(self.n), total)
            return out

    return Bar


def remote_info(f: ModelFile, token=None) -> tuple[int | None, str | None]:
    """(size, sha256 or None) of a file on the hub (a HEAD request through the real client)."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    meta = get_hf_file_metadata(hf_hub_url(f.repo_id, f.path, revision=f.revision, endpoint=endpoint()),
                                token=token, endpoint=endpoint())
    etag = (meta.etag or "").strip('"')
    return meta.size, (etag if SHA256.match(etag) else None)


def fetch(files: list[ModelFile], dirs: dict[str, str | os.PathLike], progress: Progress = None,
          interrupt: Interrupt = None, token=None) -> list[Path]:
    """Download `files` into dirs[file.folder]; returns their final paths (existing complete
    files are kept). Raises FetchError naming what failed and what to do."""
    from huggingface_hub import constants, errors, hf_hub_download

    dirs = {k: Path(v) for k, v in dirs.items()}
    missing = sorted({f.folder for f in files} - set(dirs))
    if missing:
        raise FetchError(f"no target folder for {missing}", "dirs", "give a folder for every model folder named")
    offline = FetchError("this machine is offline (HF_HUB_OFFLINE is set), nothing was downloaded", "files",
                         offline_fix([f for f in files if not (dirs[f.folder] / f.name).is_file()], dirs))
    # a file in its folder is complete (only verified files are moved there): kept, the hub is
    # not asked, so a workflow with its weights in place runs offline
    todo = [f for f in files if not (dirs[f.folder] / f.name).is_file()]
    if todo and constants.HF_HUB_OFFLINE:
        raise offline
    infos = {}
    for f in todo:
        check(interrupt)
        try:
            infos[f] = remote_info(f, token)
        except errors.OfflineModeIsEnabled:
            raise offline from None
        except (errors.RepositoryNotFoundError, errors.EntryNotFoundError, errors.RevisionNotFoundError,
                errors.GatedRepoError) as e:
            raise FetchError(f"{f.repo_id}/{f.path} is not on {endpoint()} ({type(e).__name__})", "files",
                             "check the repository and file name, or log in (HF_TOKEN) for a gated one") from None
        except Exception as e:      # connection refused, DNS, timeouts, proxies: all 'cannot reach'
            raise FetchError(f"cannot reach {endpoint()} ({type(e).__name__}: {str(e)[:200]})", "files",
                             offline_fix(todo, dirs)) from None
    total = sum(s or 0 for s, _ in infos.values())
    done = [0]
    out = []
    for f in files:
        check(interrupt)
        target = dirs[f.folder] / f.name
        if f not in infos:
            out.append(target)
            continue
        size, hub_sha = infos[f]
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = dirs[f.folder] / STAGING / f.repo_id.replace("/", "--")
        try:
            got = Path(hf_hub_download(f.repo_id, f.path, revision=f.revision, local_dir=staging,
                                       endpoint=endpoint(), token=token,
                                       tqdm_class=_progress_class(progress, done, total)))
        except errors.OfflineModeIsEnabled:
            raise offline from None
        except Exception as e:
            raise FetchError(f"downloading {f.name} from {endpoint()} failed ({type(e).__name__}: {str(e)[:200]}); "
                             "what arrived is kept and the next run resumes it", "files", offline_fix([f], dirs)) from None
        want = f.sha256 or hub_sha
        if size is not None and got.stat().st_size != size:
            got.unlink()
            raise FetchError(f"{f.name} arrived with {got.stat().st_size if got.exists() else 0} bytes, "
                             f"not {size}", "files", "run the download again")
        if want is not None:
            have = sha256_of(got)
            if have != want:
                got.unlink()
                raise FetchError(f"{f.name} is corrupt: sha256 {have[:12]}... is not {want[:12]}...", "files",
                                 "run the download again (the bad file was removed)")
        out.append(commit_partial(got, target))
        done[0] += size or target.stat().st_size
        report(progress, done[0], total)
        stage_root = dirs[f.folder] / STAGING
        if not any(stage_root.rglob("*.incomplete")):    # nothing left to resume: tidy up
            shutil.rmtree(stage_root, ignore_errors=True)
    return out
