"""System metrics (client/trainmon_client/system.py): CPU and memory from /proc checked
against ``ps``, the GPU path against a stand-in NVML (a fake ``pynvml`` on the path of a
real training subprocess), off with one argument or ``$TRAINMON_SYSTEM=0``, and never a
step of the user's numbering."""

from __future__ import annotations

import importlib.util
import itertools
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from tests.helpers import Receiver
from trainmon.state import RunState
from trainmon_client import Monitor
from trainmon_client.protocol import Columns, Record, columns_wire, decode_items, pack_payload
from trainmon_client.system import gpu_index

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc")


@pytest.fixture(autouse=True)
def _system_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """On, as by default, whatever the environment running the tests says."""
    monkeypatch.delenv("TRAINMON_SYSTEM", raising=False)


def _system(records: list[Record]) -> list[Record]:
    return [
        r for r in records if r.kind == "metrics" and any(n.startswith("sys/") for n in r.metrics)
    ]


def _ps(field: str) -> int:
    """A field of ``ps`` for this process: ``times`` (CPU seconds) or ``rss`` (KiB)."""
    out = subprocess.run(
        ["ps", "-o", f"{field}=", "-p", str(os.getpid())],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.strip())


def test_cpu_and_memory_agree_with_ps(receiver: Receiver, endpoint: str) -> None:
    """A thread spinning while five samples arrive: the CPU the samples add up to is what
    ``ps`` counts (to its resolution, a second); resident memory is ``ps``'s within 10%;
    the user's steps are 0, 1, 2 … as if no sample had been sent."""
    cpu_before, started = _ps("times"), time.time()
    spin = threading.Event()

    def burn() -> None:
        while not spin.is_set():
            sum(range(1000))

    burner = threading.Thread(target=burn, daemon=True)
    with Monitor(endpoint, run="r") as mon:
        burner.start()
        step = 0
        # (logs until 5 samples arrived: how long depends on the machine, not a sleep)
        while len(_system(receiver.records)) < 5:
            mon.log(loss=1.0 / (step + 1))
            step += 1
            time.sleep(0.001)
            assert step < 100_000, "no system samples arrived"
        rss_kib = _ps("rss")
        spin.set()
        burner.join()
    receiver.until_bye()
    cpu_after, ended = _ps("times"), time.time()
    samples = _system(receiver.records)
    assert all(set(r.metrics) == {"sys/cpu", "sys/rss_mb"} for r in samples), samples[0]
    spent = sum(
        later.metrics["sys/cpu"] / 100 * (later.time - earlier.time)
        for earlier, later in itertools.pairwise(samples)
    )
    # ps counts whole seconds, from before the Monitor to after its close: the samples
    # (from the first to the last) add up to no more, and to no less than what three
    # busy threads (spinning, logging, I/O) could have spent outside them
    counted = cpu_after - cpu_before
    outside = (samples[0].time - started) + (ended - samples[-1].time)
    assert counted - 1.0 - 3 * outside <= spent <= counted + 1.0, (spent, counted, outside)
    assert spent > 0.2 * (samples[-1].time - samples[0].time)  # a thread spun all along
    assert abs(samples[4].metrics["sys/rss_mb"] * 1024 - rss_kib) <= 0.1 * rss_kib
    user = [r for r in receiver.metrics() if "loss" in r.metrics]
    assert [r.step for r in user] == list(range(len(user)))
    assert all(r.step is not None and r.step <= len(user) for r in samples)


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_off_with_one_argument(
    receiver: Receiver, endpoint: str, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """``system_metrics=False`` or ``$TRAINMON_SYSTEM=0``: no ``sys/*`` record."""
    if how == "environment":
        monkeypatch.setenv("TRAINMON_SYSTEM", "0")
    with Monitor(endpoint, run="r", system_metrics=False if how == "argument" else None) as mon:
        started = time.monotonic()
        while time.monotonic() - started < 2.5:  # more than two sampling periods
            mon.log(loss=0.5)
            time.sleep(0.01)
    receiver.until_bye()
    assert receiver.metrics()
    assert not _system(receiver.records)


_STAND_IN_NVML = '''
"""A stand-in for nvidia-ml-py: four GPUs whose values say which one was read."""
calls = []
class NVMLError(Exception):
    pass
class _Util:
    def __init__(self, i): self.gpu, self.memory = 10 * i + 7, 0
class _Mem:
    def __init__(self, i): self.used, self.total, self.free = (i + 1) << 30, 16 << 30, 0
def nvmlInit(): calls.append("init")
def nvmlDeviceGetCount(): return 4
def nvmlDeviceGetHandleByIndex(i): return i
def nvmlDeviceGetHandleByUUID(u): return int(u.rsplit("-", 1)[1])
def nvmlDeviceGetUtilizationRates(h): return _Util(h)
def nvmlDeviceGetMemoryInfo(h): return _Mem(h)
def nvmlDeviceGetTemperature(h, sensor): return 60 + h
def nvmlDeviceGetPowerUsage(h): return 100_000 + 1000 * h
'''

_TRAINING = """
import sys, time
from trainmon_client import Monitor
with Monitor(sys.argv[1], run="gpu") as mon:
    started = time.monotonic()
    while time.monotonic() - started < 2.5:
        mon.log(loss=0.5)
        time.sleep(0.01)
"""


@pytest.mark.parametrize(
    ("visible", "local_rank", "gpu"),
    [("3,1", "1", 1), ("", "2", 2), ("GPU-x-3,GPU-x-0", "0", 3), (None, None, 0)],
)
def test_gpu_of_this_rank_through_a_stand_in_nvml(
    receiver: Receiver,
    endpoint: str,
    tmp_path: Path,
    visible: str | None,
    local_rank: str | None,
    gpu: int,
) -> None:
    """A real training process with a fake ``pynvml`` on its path: one GPU's metrics,
    the one its local rank has among ``CUDA_VISIBLE_DEVICES`` (indices or UUIDs)."""
    (tmp_path / "pynvml.py").write_text(textwrap.dedent(_STAND_IN_NVML))
    env = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "TRAINMON_SYSTEM")}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")])
    if visible:
        env["CUDA_VISIBLE_DEVICES"] = visible
    if local_rank is not None:
        env["LOCAL_RANK"] = local_rank
    proc = subprocess.run(
        [sys.executable, "-c", _TRAINING, endpoint],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "trainmon" not in proc.stderr  # nothing to say
    receiver.until_bye()
    samples = _system(receiver.records)
    assert samples
    for record in samples:
        values = record.metrics
        assert values["sys/gpu_util"] == 10 * gpu + 7
        assert values["sys/gpu_mem_mb"] == (gpu + 1) * 1024
        assert values["sys/gpu_mem_total_mb"] == 16 * 1024
        assert values["sys/gpu_temp_c"] == 60 + gpu
        assert values["sys/gpu_power_w"] == 100 + gpu
        assert values["sys/rss_mb"] > 0


def test_without_nvml_no_gpu_metrics_and_no_warning(
    receiver: Receiver, endpoint: str, caplog: pytest.LogCaptureFixture
) -> None:
    """No nvidia-ml-py installed (as here): CPU and memory only, and nothing said."""
    if importlib.util.find_spec("pynvml") is not None:
        pytest.skip("nvidia-ml-py is installed here")
    with Monitor(endpoint, run="r") as mon:
        while len(_system(receiver.records)) < 2:
            mon.log(loss=0.5)
            time.sleep(0.01)
    receiver.until_bye()
    assert {n for r in _system(receiver.records) for n in r.metrics} == {"sys/cpu", "sys/rss_mb"}
    assert not [r for r in caplog.records if "trainmon" in r.getMessage()]


def test_which_gpu() -> None:
    """The GPU of a process: its local rank's among CUDA_VISIBLE_DEVICES, else its index."""
    assert gpu_index({"LOCAL_RANK": "2"}) == (2, None)
    assert gpu_index({"LOCAL_RANK": "1", "CUDA_VISIBLE_DEVICES": "5,6"}) == (6, None)
    assert gpu_index({"CUDA_VISIBLE_DEVICES": "GPU-abc"}) == (None, "GPU-abc")
    assert gpu_index({"CUDA_VISIBLE_DEVICES": ""}) == (None, None)
    assert gpu_index({}) == (0, None)


def test_samples_are_no_training_progress() -> None:
    """In the monitor's state a record of only ``sys/*`` metrics (alone, or a batch of
    columns) keeps its series but moves neither the worker's step nor the time of its
    last training metrics: training that hangs still shows as stalled."""
    state = RunState()
    hello = Record("hello", "r", "w", 0, 100.0, info={"host": "h", "pid": 1, "rank": 0})
    state.apply(hello, 100.0)
    state.apply(Record("metrics", "r", "w", 1, 100.0, step=5, metrics={"loss": 0.5}), 100.0)
    state.apply(Record("metrics", "r", "w", 2, 150.0, step=5, metrics={"sys/cpu": 80.0}), 150.0)
    wire = columns_wire(
        "r",
        "w",
        3,
        [170.0, 171.0],
        [5, 5],
        [None, None],
        {"sys/cpu": [90.0, 95.0], "sys/rss_mb": [512.0, 513.0]},
    )
    items = decode_items([b"r", pack_payload([wire])])
    assert isinstance(items[0], Columns)
    assert state.apply_columns(items[0], 171.0) == 2
    worker = state.runs["r"].workers["w"]
    assert worker.step == 5
    assert worker.last_metrics_at == 100.0
    assert worker.status(171.0, stall_after_s=60.0) == "stalled"
    assert worker.series["sys/cpu"].last == 95.0
    assert worker.series["sys/rss_mb"].last == 513.0


def test_nvml_without_a_driver_gives_no_gpu_metrics_and_no_warning(
    receiver: Receiver, endpoint: str, tmp_path: Path
) -> None:
    """nvidia-ml-py installed where no driver is (its nvmlInit raises): a real training
    process sends CPU and memory only and says nothing."""
    (tmp_path / "pynvml.py").write_text(
        "class NVMLError(Exception):\n    pass\n"
        "def nvmlInit():\n    raise NVMLError('NVML Shared Library Not Found')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TRAINMON_SYSTEM"}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-c", _TRAINING, endpoint],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "trainmon" not in proc.stderr
    receiver.until_bye()
    samples = _system(receiver.records)
    assert samples
    assert {n for r in samples for n in r.metrics} == {"sys/cpu", "sys/rss_mb"}


def _workers_screen(host: str, width: int) -> str:
    from io import StringIO

    from rich.console import Console

    from trainmon.view.options import ViewOptions
    from trainmon.view.workers import workers_panel

    state = RunState()
    info = {"host": host, "pid": 4242, "rank": 0}
    state.apply(Record("hello", "r", "w", 0, 100.0, info=info), 100.0)
    state.apply(Record("metrics", "r", "w", 1, 100.0, step=9, metrics={"loss": 0.5}), 100.0)
    system = {"sys/cpu": 180.0, "sys/rss_mb": 30000.0, "sys/gpu_util": 99.0}
    system |= {"sys/gpu_mem_mb": 81000.0, "sys/gpu_mem_total_mb": 81920.0}
    state.apply(Record("metrics", "r", "w", 2, 101.0, step=9, metrics=system), 101.0)
    out = StringIO()
    console = Console(file=out, width=width, height=8, color_system=None)
    console.print(workers_panel(state.runs["r"], ViewOptions(), 101.5))
    return out.getvalue()


def test_workers_columns_that_do_not_fit_are_left_out() -> None:
    """All four system columns where they fit; where they do not, the rightmost go first
    (RSS, then CPU, GPU memory, GPU %), and no row wraps."""
    wide = _workers_screen("gpu-node", 120)
    assert re.search(r"GPU %\s+GPU mem\s+CPU %\s+RSS\s+status", wide), wide
    assert re.search(r" 99\s+79G/80G\s+180\s+29G\s+running", wide), wide
    narrow = _workers_screen("a-much-longer-host-name", 104)
    assert "GPU %" in narrow and "RSS" not in narrow, narrow
    assert all(len(line) <= 104 for line in narrow.splitlines())
    assert len(narrow.splitlines()) == 4, narrow  # border, header, one row, border


def test_a_run_without_a_loss_has_its_own_metric_in_front() -> None:
    """Samples that arrive before training's first metric do not become the main metric
    (a run logging only ``reward``), and the exit summary lists no ``sys/*``."""
    from trainmon.report import summary
    from trainmon.view.options import ViewOptions
    from trainmon.view.shown import main_metric

    state = RunState()
    info = {"host": "h", "pid": 1, "rank": 0}
    state.apply(Record("hello", "r", "w", 0, 100.0, info=info), 100.0)
    sample = {"sys/cpu": 50.0, "sys/rss_mb": 100.0}
    state.apply(Record("metrics", "r", "w", 1, 101.0, step=0, metrics=sample), 101.0)
    state.apply(Record("metrics", "r", "w", 2, 102.0, step=0, metrics={"reward": 3.0}), 102.0)
    run = state.runs["r"]
    assert main_metric(run, ViewOptions()) == "reward"
    text = summary(state, ViewOptions(), 103.0)
    assert "reward" in text and "sys/" not in text, text
