"""Code written for TensorBoard switches to trainmon by changing one import: an unmodified
torch.utils.tensorboard training script (tests/tensorboard_train.py) is run as it is,
writing event files, and as a copy with only its import line changed, publishing to a
real `trainmon tail`; what tail prints equals what TensorBoard recorded."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import free_endpoint, start_cli, stop, wait_for, wait_listening
from trainmon.sources.recording import load

# Looked up, not imported: the scripts import them in processes of their own. CI installs
# both (tests/constraints.txt pins them), so there a missing one fails these tests.
_MISSING = [name for name in ("torch", "tensorboard") if importlib.util.find_spec(name) is None]
needs_torch = pytest.mark.skipif(
    bool(_MISSING) and not os.environ.get("CI"),
    reason=f"needs {' and '.join(_MISSING)}: pip install -c tests/constraints.txt tensorboard",
)

SCRIPT = Path(__file__).resolve().parent / "tensorboard_train.py"
TORCH_IMPORT = "from torch.utils.tensorboard import SummaryWriter\n"
OUR_IMPORT = "from trainmon_client.tensorboard import SummaryWriter\n"
STEPS = 160  # tensorboard_train.py: 2.5 epochs of 64 steps

# What TensorBoard's event files hold, read in a process of its own (tensorboard's
# imports are no business of the test process): [directory, tag, step, value] each.
READ_EVENTS = """
import json, os, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
root, out = sys.argv[1], []
for where, _, files in sorted(os.walk(root)):
    if any(f.startswith("events.out.tfevents") for f in files):
        events = EventAccumulator(where, size_guidance={"scalars": 0})
        events.Reload()
        for tag in events.Tags()["scalars"]:
            for e in events.Scalars(tag):
                out.append([os.path.relpath(where, root), tag, e.step, e.value])
json.dump(out, sys.stdout)
"""


def _env() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONHASHSEED="0")


def _tensorboard_history(log_dir: Path) -> dict[tuple[str, int], float]:
    """The unmodified script's scalars as TensorBoard recorded them, by the metric name
    trainmon gives each (add_scalars' ``losses`` in directory ``losses_val``: ``losses/val``;
    add_hparams' metrics are in their run's directory, under their own tag)."""
    run = subprocess.run(
        [sys.executable, str(SCRIPT), str(log_dir)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    read = subprocess.run(
        [sys.executable, "-c", READ_EVENTS, str(log_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    history: dict[tuple[str, int], float] = {}
    for where, tag, step, value in json.loads(read.stdout):
        if where.startswith(tag.replace("/", "_") + "_"):  # add_scalars' own directory
            tag = f"{tag}/{where.removeprefix(tag.replace('/', '_') + '_')}"
        assert (tag, step) not in history
        history[tag, step] = value
    return history


def _switched_copy(tmp_path: Path) -> Path:
    """The script with its import line changed, and nothing else."""
    text = SCRIPT.read_text()
    assert text.count(TORCH_IMPORT) == 1
    copy = tmp_path / "tensorboard_train.py"
    copy.write_text(text.replace(TORCH_IMPORT, OUR_IMPORT))
    changed = [
        (a, b)
        for a, b in zip(text.splitlines(), copy.read_text().splitlines(), strict=True)
        if a != b
    ]
    assert changed == [(TORCH_IMPORT.strip(), OUR_IMPORT.strip())]
    return copy


def _tailed(script: Path, log_dir: Path, printed: Path) -> tuple[list[dict[str, Any]], str]:
    """Run ``script`` publishing to a real `trainmon tail --exit-when-done`: the lines
    tail printed, and the script's stderr."""
    endpoint = free_endpoint()
    with open(printed, "w") as out:  # a file: no pipe buffer to fill
        tail = start_cli("tail", "--bind", endpoint, "--exit-when-done", stdout=out)
    try:
        wait_listening(endpoint)
        run = subprocess.run(
            [sys.executable, str(script), str(log_dir)],
            env=dict(_env(), TRAINMON_ENDPOINT=endpoint),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stderr
        _, err = tail.communicate(timeout=60)
        assert tail.returncode == 0, err
    finally:
        stop(tail)
    return [json.loads(line) for line in printed.read_text().splitlines()], run.stderr


@needs_torch
def test_an_unmodified_tensorboard_script_is_watched_with_one_import_changed(
    tmp_path: Path,
) -> None:
    """Every scalar TensorBoard records arrives at tail with the same name, step and
    value (TensorBoard keeps float32); the tag ``epoch`` is each record's epoch
    (fractional), one record per step; add_histogram, add_text and add_graph are
    ignored with one warning each; no event file is written."""
    expected = _tensorboard_history(tmp_path / "torch")
    lines, stderr = _tailed(_switched_copy(tmp_path), tmp_path / "ours", tmp_path / "tail")

    assert {line["run"] for line in lines} == {"ours"}, "named after log_dir"
    received: dict[tuple[str, int], float] = {}
    for line in lines:
        for name, value in line["metrics"].items():
            assert (name, line["step"]) not in received
            received[name, line["step"]] = value
        if line["step"] < STEPS:
            received["epoch", line["step"]] = line["epoch"]
    assert received.keys() == expected.keys()
    for key, value in expected.items():
        assert _float32(received[key]) == value, key
    assert [line["step"] for line in lines] == list(range(STEPS + 1)), "one record a step"
    assert lines[-1]["metrics"] == {"hparam/val_loss": received["hparam/val_loss", STEPS]}
    assert math.isclose(lines[-2]["epoch"], 2.484375)

    warned = Counter(line for line in stderr.splitlines() if "SummaryWriter.add_" in line)
    assert sorted(warned) == [
        "trainmon: SummaryWriter.add_graph(): trainmon shows scalars only; dropped (warned once)",
        "trainmon: SummaryWriter.add_histogram(): trainmon shows scalars only; "
        "dropped (warned once)",
        "trainmon: SummaryWriter.add_text(): trainmon shows scalars only; dropped (warned once)",
    ]
    assert set(warned.values()) == {1}
    assert not (tmp_path / "ours").exists()


def _float32(value: float) -> float:
    """``value`` as TensorBoard keeps it (a float32's value)."""
    import struct

    return float(struct.unpack("f", struct.pack("f", value))[0])


@needs_torch
def test_the_signatures_are_torchs() -> None:
    """Each call takes torch's parameters, in torch's order, with torch's defaults (the
    constructor also takes the Monitor's arguments by name, after them)."""
    compare = """
import inspect, json
from torch.utils.tensorboard import SummaryWriter as Torch
from trainmon_client.tensorboard import SummaryWriter as Ours
out = {}
for name in ["__init__", "add_scalar", "add_scalars", "add_hparams", "flush", "close",
             "get_logdir", "__enter__"]:
    params = [inspect.signature(getattr(c, name)).parameters.values() for c in (Torch, Ours)]
    out[name] = [[[p.name, repr(p.default), p.kind.name] for p in ps] for ps in params]
print(json.dumps(out))
"""
    done = subprocess.run(
        [sys.executable, "-c", compare], capture_output=True, text=True, timeout=60, check=True
    )
    for name, (torch_params, ours) in json.loads(done.stdout).items():
        assert ours[: len(torch_params)] == torch_params, name
        assert [kind for _, _, kind in ours[len(torch_params) :]] in (
            [],
            ["KEYWORD_ONLY", "VAR_KEYWORD"],
        ), name


HELD = """
import sys
from trainmon_client.tensorboard import SummaryWriter

writer = SummaryWriter(sys.argv[1])
writer.add_scalar("a", 1.0, 5)
writer.add_scalars("m", {"x": 2.0, "y": 3.0}, 5)
print("held", flush=True)
sys.stdin.readline()  # no call until the test has seen step 5 arrive
writer.add_scalar("a", 4.0, 6)
writer.add_scalar("a", 5.0, 6)  # a tag again at its step: a record of its own
writer.add_scalar("b", 6.0)  # no step: the Monitor counts on
writer.add_hparams({"lr": 0.1}, {"final": 7.0})  # no step either
writer.add_audio("sound", None)
writer.add_audio("sound", None)
writer.close()
"""


def test_a_steps_values_go_out_together_without_waiting_for_the_next_call(
    tmp_path: Path,
) -> None:
    """The scalars of step 5 arrive at tail as one record while training makes no more
    calls (the writer's thread sends them); a tag logged again at its step goes out as a
    record of its own; calls without a step go together too, the step counted on from
    the last; add_audio is warned about once."""
    endpoint = free_endpoint()
    printed = tmp_path / "tail"
    with open(printed, "w") as out:
        tail = start_cli("tail", "--bind", endpoint, "--exit-when-done", stdout=out)
    train = None
    try:
        wait_listening(endpoint)
        train = subprocess.Popen(
            [sys.executable, "-c", HELD, str(tmp_path / "runs" / "held")],
            env=dict(os.environ, TRAINMON_ENDPOINT=endpoint),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert train.stdout is not None and train.stdin is not None
        assert train.stdout.readline() == "held\n"

        def lines() -> list[dict[str, Any]]:
            return [json.loads(line) for line in printed.read_text().splitlines()]

        wait_for(lines, 20, 0.02, "step 5's record")
        train.stdin.write("\n")
        train.stdin.flush()
        _, err = train.communicate(timeout=60)
        assert train.returncode == 0, err
        tail.wait(timeout=60)
    finally:
        for proc in (tail, train):
            if proc is not None:
                stop(proc)
    got = [(line["run"], line["step"], line["metrics"]) for line in lines()]
    assert got == [
        ("held", 5, {"a": 1.0, "m/x": 2.0, "m/y": 3.0}),
        ("held", 6, {"a": 4.0}),
        ("held", 6, {"a": 5.0}),
        ("held", 7, {"b": 6.0, "final": 7.0}),  # (no step either: together, counted on)
    ]
    warned = [line for line in err.splitlines() if "add_audio" in line]
    assert warned == [
        "trainmon: SummaryWriter.add_audio(): trainmon shows scalars only; dropped (warned once)"
    ]


def test_the_run_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """log_dir's last part names the run, else the default name with the comment added;
    $TRAINMON_RUN wins over both; a Monitor given is used, and left open by close()."""
    from trainmon_client import Monitor
    from trainmon_client.arguments import run_name
    from trainmon_client.tensorboard import SummaryWriter

    endpoint = free_endpoint()
    names = []
    for log_dir, comment in [("runs/exp1/", ""), (None, "_lr0.1"), (Path("/tmp/x/b"), "")]:
        with SummaryWriter(log_dir, comment, endpoint=endpoint, flush_timeout_s=0) as writer:
            names.append(writer.monitor.run)
    assert names == ["exp1", run_name(None) + "_lr0.1", "b"]
    monkeypatch.setenv("TRAINMON_RUN", "mine")
    with SummaryWriter("runs/exp1", endpoint=endpoint, flush_timeout_s=0) as writer:
        assert writer.monitor.run == "mine"
    own = Monitor(endpoint, run="own", flush_timeout_s=0)
    with SummaryWriter("runs/x", monitor=own) as writer:
        assert writer.monitor is own
    assert not own._closed, "a Monitor given is left open"
    own.close()


@needs_torch
def test_two_ranks_under_torchrun(tmp_path: Path) -> None:
    """The switched script under torchrun with two CPU ranks: a real `trainmon watch
    --record` hears both, each with its rank and world in its hello and its whole run
    (the ranks train alike, so their values are equal)."""
    endpoint = free_endpoint()
    recording = tmp_path / "watch.tmrec"
    watch = start_cli("watch", "--bind", endpoint, "--plain", "--record", str(recording))
    job = None
    try:
        wait_listening(endpoint)
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        script = [str(_switched_copy(tmp_path)), str(tmp_path / "ddp")]
        job = subprocess.run(
            [*torchrun, "--nproc-per-node", "2", *script],
            env=dict(_env(), TRAINMON_ENDPOINT=endpoint),
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert job.returncode == 0, job.stdout + job.stderr

        def byes() -> list[Any]:  # the recording is written about once a second
            if not recording.exists():
                return []
            records = load([recording]).records
            return records if sum(r.kind == "bye" for r in records) == 2 else []

        records = wait_for(byes, 30, 0.1, "both ranks' bye in the recording")
    finally:
        stop(watch)
    hellos = {r.worker: r.info for r in records if r.kind == "hello"}
    assert sorted((i["rank"], i["world"]) for i in hellos.values()) == [(0, 2), (1, 2)]
    runs: dict[str, list[tuple[int | None, dict[str, float]]]] = {}
    for r in records:
        if r.kind == "metrics" and r.metrics:
            runs.setdefault(r.worker, []).append((r.step, dict(r.metrics)))
    assert {r.run for r in records} == {"ddp"}
    first, second = runs.values()
    assert len(first) == STEPS + 1 and first == second


def test_values_are_taken_at_the_call_and_gpu_tensors_read_off_the_training_thread() -> None:
    """Values changed in place after add_scalar (a numpy accumulator, a stand-in for a
    tensor on a GPU) arrive as they were at the call; the GPU one is only cloned on the
    training thread, read on the I/O thread, as Monitor.log does."""
    import threading

    import numpy as np

    from tests.helpers import Receiver
    from tests.test_client_values import StandInCudaTensor
    from trainmon_client.tensorboard import SummaryWriter

    endpoint = free_endpoint()
    receiver = Receiver(endpoint)
    calls: list[tuple[str, int]] = []
    gpu, total = StandInCudaTensor(0.0, calls), np.zeros(())
    try:
        with SummaryWriter("runs/r", endpoint=endpoint) as writer:
            for step in range(50):
                gpu += 1.0
                total += 2.0
                writer.add_scalar("gpu", gpu, np.int64(step))
                writer.add_scalars("acc", {"total": total}, step)
        records = [r for r in receiver.until_bye() if r.kind == "metrics"]
    finally:
        receiver.close()
    assert [(r.step, dict(r.metrics)) for r in records] == [
        (step, {"gpu": step + 1.0, "acc/total": 2.0 * (step + 1)}) for step in range(50)
    ]
    training = threading.get_ident()
    assert {name for name, thread in calls if thread == training} <= {"numel", "detach", "clone"}
