"""How the llama.cpp backend loads: threads from the current CPU use, model parameters."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from valuescope.models import llamacpp
from valuescope.models.llamacpp import busy_cores, default_threads

linux_only = pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="reads /proc/stat")


@linux_only
def test_a_spinning_process_counts_as_a_busy_core():
    cpu = min(os.sched_getaffinity(0))
    spin = f"import os\nos.sched_setaffinity(0, {{{cpu}}})\nwhile True: pass"
    child = subprocess.Popen([sys.executable, "-c", spin])
    try:
        busy = busy_cores({cpu}, window=0.5)
        # startup of the child takes part of the window; a bug reading idle as busy, or
        # summing the wrong CPUs, gives 0 or a value above 1
        assert busy is not None and 0.5 < busy <= 1.0 + 1e-9
    finally:
        child.kill()
        child.wait()


@linux_only
def test_this_process_is_not_counted_against_itself():
    cpu = min(os.sched_getaffinity(0))
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        start = os.times()
        # measure while a thread of this process keeps the core busy: the sampler
        # subtracts our own CPU time, so the figure stays at what others use
        stop = threading.Event()

        def work():
            while not stop.is_set():
                sum(range(1000))

        worker = threading.Thread(target=work)
        worker.start()
        try:
            busy = busy_cores({cpu}, window=0.5)
        finally:
            stop.set()
            worker.join()
        own = os.times().user - start.user
    finally:
        os.sched_setaffinity(0, before)
    assert own > 0.3  # the thread did keep the core busy
    assert busy is not None and busy < own / 0.5 - 0.3


def test_without_proc_stat_the_load_average_decides(monkeypatch):
    monkeypatch.setattr(llamacpp, "_cpu_times", lambda cpus: None)
    cores = len(os.sched_getaffinity(0))
    monkeypatch.setattr(os, "getloadavg", lambda: (cores + 5.0, 0.0, 0.0))
    assert default_threads() == 1
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert default_threads() == cores


def test_threads_are_the_free_cores(monkeypatch):
    cores = len(os.sched_getaffinity(0))
    monkeypatch.setattr(llamacpp, "busy_cores", lambda cpus: 0.2)
    monkeypatch.setattr(os, "getloadavg", lambda: (cores + 5.0, 0.0, 0.0))  # stale, ignored
    assert default_threads() == cores
    monkeypatch.setattr(llamacpp, "busy_cores", lambda cpus: cores + 1.0)
    assert default_threads() == 1


def test_models_loading_at_once_each_get_their_own_parameters():
    """`_model_params` patches a module function: two threads must not mix their fields."""
    from types import SimpleNamespace

    from valuescope.models.llamacpp import _model_params

    lib = SimpleNamespace(llama_model_default_params=lambda: SimpleNamespace(use_extra_bufts=True))
    fake = SimpleNamespace(llama=SimpleNamespace(llama_cpp=lib))
    seen: dict[str, list[bool]] = {"on": [], "off": []}

    def load(name: str, repack: bool) -> None:
        for _ in range(50):
            with _model_params(fake, use_extra_bufts=repack):
                threading.Event().wait(0.001)  # the load takes a while
                seen[name].append(lib.llama_model_default_params().use_extra_bufts)

    threads = [threading.Thread(target=load, args=a) for a in (("on", True), ("off", False))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {"on": [True] * 50, "off": [False] * 50}
    assert lib.llama_model_default_params().use_extra_bufts is True  # restored
