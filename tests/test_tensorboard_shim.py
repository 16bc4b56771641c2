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

from tests.helpers import free_endpoint, start_cli, stop, wait_listening

# Looked up, not imported: the scripts import them in processes of their own. CI installs
# both (tests/constraints.txt pins them), so there a missing one fails these tests.
_MISSING = [name for name in ("torch", "tensorboard") if importlib.util.find_spec(name) is None]
if _MISSING and not os.environ.get("CI"):
    pytest.skip(
        f"needs {' and '.join(_MISSING)}: pip install -c tests/constraints.txt torch tensorboard",
        allow_module_level=True,
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
