"""Monitor.track() in a real training process: a real ``trainmon tail`` receives the
tracked steps and the wait for data, and the real dashboard in tmux says input-bound."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import Tmux, command, free_endpoint, start_cli, stop, wait_listening

TRAINING = Path(__file__).resolve().parent / "track_proc.py"


def _training(endpoint: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(TRAINING), endpoint, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("batch", [0, 2], ids=["sequence", "torch-dataloader"])
def test_tail_receives_the_tracked_steps_and_the_wait_for_data(batch: int) -> None:
    """1.5 epochs of 40 slow items (as they are, or a torch DataLoader's batches of 2):
    the losses arrive at the steps and with the values the training printed, every item
    counts as a step (60 or 30 in all), and the wait for data, the larger part of each
    step, arrives on tracked steps."""
    if batch and importlib.util.find_spec("torch") is None and not os.environ.get("CI"):
        pytest.skip("needs torch (CI installs the pinned CPU build)")
    per_epoch = 40 // (batch or 1)
    endpoint = free_endpoint()
    tail = start_cli("tail", "--bind", endpoint, "--exit-when-done")
    training = None
    try:
        wait_listening(endpoint)
        training = _training(endpoint, "--items", "40", "--epochs", "1.5", "--batch", str(batch))
        printed, err = training.communicate(timeout=60)
        assert training.returncode == 0, err
        out, err = tail.communicate(timeout=60)
        assert tail.returncode == 0, err
    finally:
        stop(tail)
        if training is not None:
            stop(training)
    lines = [json.loads(line) for line in out.splitlines()]
    sent = [json.loads(line) for line in printed.splitlines()]
    losses = [(r["step"], r["metrics"]["loss"]) for r in lines if "loss" in r["metrics"]]
    assert losses == [(s["step"], s["loss"]) for s in sent]
    last = per_epoch * 3 // 2 - 1  # a whole epoch, then half of one
    assert losses[-1][0] == last - 1 and losses[per_epoch // 2][0] == per_epoch
    waits = [r for r in lines if "loop/data_wait" in r["metrics"]]
    assert waits and waits[-1]["step"] == last
    assert all(r["metrics"]["loop/data_wait"] > 0.5 for r in waits)
    assert {r["epoch"] for r in waits} <= {0, 1}


@pytest.mark.tmux
def test_the_dashboard_says_input_bound(tmux: Tmux) -> None:
    """Training whose loader is slow: the watching dashboard says input-bound."""
    endpoint = free_endpoint()
    tmux.type(f"{command('watch', '--bind', endpoint)}; echo WATCH-DONE-$((6*7))")
    tmux.wait_text(f"Waiting for records on {endpoint}")
    training = _training(endpoint, "--items", "100", "--delay", "0.02", "--epochs", "3")
    try:
        screen = tmux.wait_text("input-bound", timeout_s=30)
        share = re.search(r"input-bound (\d+)%", screen)
        assert share and int(share.group(1)) >= 50, screen
        assert "Progress" in screen
        tmux.keys("q")
        tmux.wait_text("WATCH-DONE-42")
    finally:
        stop(training)
