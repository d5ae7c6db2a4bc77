"""metrics.json's "provenance": fields and types, credentials redacted, the report shows it."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import scipy

from valuescope import provenance
from valuescope.config import RunConfig
from valuescope.elicit.prompts import get_template
from valuescope.report import build_report
from valuescope.runcore.pipeline import run
from valuescope.runcore.reader import read_run_config


def test_a_run_records_its_provenance(tmp_path):
    out = tmp_path / "run"
    before = datetime.now(timezone.utc)
    argv = ["valuescope", "run", "--base-url", "http://alice:s3cret@127.0.0.1:9/v1", "--x=y"]
    old_argv = sys.argv
    sys.argv = argv
    try:
        config = RunConfig(model="sim/thurstone", out=out, bootstrap=0)
        metrics = run(config, report=build_report).metrics
    finally:
        sys.argv = old_argv
    saved = json.loads((out / "metrics.json").read_text())["provenance"]
    assert saved == json.loads(json.dumps(metrics["provenance"]))
    started = datetime.fromisoformat(saved["time"])
    assert started.tzinfo is not None and before <= started <= datetime.now(timezone.utc)
    assert saved["valuescope_version"] and isinstance(saved["valuescope_version"], str)
    libraries = saved["libraries"]
    assert libraries["numpy"] == np.__version__ and libraries["scipy"] == scipy.__version__
    assert libraries["pandas"] == pd.__version__
    _, record = read_run_config(out)
    assert saved["outcomes_sha256"] == record["outcomes_sha256"]
    expected = provenance.template_sha256(get_template("default"))
    assert saved["template_sha256"] == {"default": expected} and len(expected) == 64
    assert saved["command_line"] == [
        "valuescope",
        "run",
        "--base-url",
        "http://alice:***@127.0.0.1:9/v1",
        "--x=y",
    ]
    assert "s3cret" not in (out / "metrics.json").read_text()
    assert "s3cret" not in (out / "report.html").read_text()
    machine = saved["machine"]
    assert machine["cpu_count"] == os.cpu_count() and isinstance(machine["python"], str)
    assert isinstance(machine["platform"], str) and machine["platform"]
    assert saved["base_url"] is None  # a synthetic agent has no endpoint
    report = (out / "report.html").read_text()
    assert 'id="provenance"' in report and record["outcomes_sha256"] in report


def test_command_line_redaction_covers_every_url_form():
    argv = [
        "--base-url=https://user:pw@host.example/v1",
        "http://tokenonly@host:8000",
        "plain",
        "http://host/no-credentials",
    ]
    assert provenance.redact_command(argv) == [
        "--base-url=https://user:***@host.example/v1",
        "http://***@host:8000",
        "plain",
        "http://host/no-credentials",
    ]


def test_template_hash_follows_the_text(tmp_path):
    one, two = tmp_path / "one.txt", tmp_path / "two.txt"
    one.write_text("Pick {option_a} or {option_b}: {label_a}/{label_b}")
    two.write_text("Choose {option_a} or {option_b}: {label_a}/{label_b}")
    a, b = get_template(str(one)), get_template(str(two))
    assert provenance.template_sha256(a) != provenance.template_sha256(b)
    payload = json.dumps([a.user, a.system, list(a.labels), a.reasoning], ensure_ascii=False)
    assert provenance.template_sha256(a) == hashlib.sha256(payload.encode()).hexdigest()


def test_git_commit_only_from_a_checkout_that_tracks_the_package(tmp_path):
    here = Path(provenance.__file__).resolve().parent
    found = provenance.git_commit(here)
    head = subprocess.run(
        ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True
    )
    if head.returncode == 0:
        assert found is not None and found["commit"] == head.stdout.strip()
    # a package copied into some other repository is not that repository's commit
    other = tmp_path / "repo"
    (other / "pkg").mkdir(parents=True)
    (other / "pkg" / "__init__.py").write_text("")
    subprocess.run(["git", "init", "-q", str(other)], check=True)
    subprocess.run(
        ["git", "-C", str(other), "-c", "user.name=t", "-c", "user.email=t@t", "commit",
         "-q", "--allow-empty", "-m", "x"],
        check=True,
    )  # fmt: skip
    assert provenance.git_commit(other / "pkg") is None
    assert provenance.git_commit(tmp_path / "nowhere") is None


def test_backend_libraries_by_provider():
    class Hooked:
        def library_versions(self):
            return {"special-lib": "1.2"}

    assert "aiohttp" in provenance.library_versions("openai/gpt-4o")
    assert "llama-cpp-python" in provenance.library_versions("embedded/smollm2-135m")
    assert "ray" in provenance.library_versions("sim/random", engine="ray")
    assert provenance.library_versions("sim/x", Hooked())["special-lib"] == "1.2"
    assert provenance.library_versions("sim/x")["numpy"] == np.__version__
