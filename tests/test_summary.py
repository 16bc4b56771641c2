"""A run's summary (``Monitor.set_summary``): end-of-run numbers that travel in the
hello's ``summary``, are kept once per run (the newest hello's) and are printed in one
``final:`` line of the exit summary, and nowhere else."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import pytest

from tests.helpers import free_endpoint, start_cli, stop, wait_listening
from tests.test_state import hello, metrics
from trainmon.report import status_line, summary
from trainmon.state import RunState
from trainmon.view import ViewOptions
from trainmon_client.protocol import ProtocolError, Record, decode, encode, pack_payload
from trainmon_client.summary import MAX_SUMMARY, merged_summary

NOW = 200.0


def _later(record: Record, t: float) -> Record:
    return record._replace(time=t)


def test_the_newest_hello_of_any_worker_gives_the_summary_and_the_report_prints_it() -> None:
    state = RunState()
    state.apply(hello("w0", 0, summary={"train_runtime": 1.0}), NOW)
    state.apply(metrics(1, "w0"), NOW)
    later = _later(hello("w1", 1, summary={"train_runtime": 12.345, "total_flos": 1.5e12}), 150)
    state.apply(later, NOW)
    older = _later(hello("w0", 0, seq=2, summary={"train_runtime": 99.0}), 120)
    state.apply(older, NOW)  # an older hello arriving later changes nothing
    run = state.runs["r"]
    assert run.summary == {"train_runtime": 12.345, "total_flos": 1.5e12}
    text = summary(state, ViewOptions(), NOW)
    assert "  final: train_runtime 12.35 s · total_flos 1.500e+12" in text.splitlines()
    assert "train_runtime" not in status_line(state, ViewOptions(), NOW)
    assert "train_runtime" not in run.metric_names and "total_flos" not in run.metric_names


def test_a_hello_without_summary_keeps_it_and_a_run_without_one_prints_no_final_line() -> None:
    state = RunState()
    state.apply(hello("w0", 0), NOW)
    assert "final:" not in summary(state, ViewOptions(), NOW)
    state.apply(_later(hello("w0", 0, seq=1, summary={"total_flos": 3.0}), 101), NOW)
    state.apply(_later(hello("w0", 0, seq=2, epochs=3), 102), NOW)  # totals again
    assert state.runs["r"].summary == {"total_flos": 3.0}


def test_the_final_lines_fit_the_width_and_count_what_they_left_out() -> None:
    state = RunState()
    numbers = {f"number_{i:03}_per_second": float(i) for i in range(50)}
    state.apply(hello("w0", 0, summary=numbers), NOW)
    text = summary(state, ViewOptions(), NOW, 80).splitlines()
    at = next(i for i, line in enumerate(text) if line.startswith("  final: "))
    final = text[at : at + 4]
    assert final[0] == "  final: number_000_per_second 0 · number_001_per_second 1"
    assert final[1] == "         number_002_per_second 2 · number_003_per_second 3"
    assert final[3] == "         number_006_per_second 6 · number_007_per_second 7 · … 42 more"
    assert not text[at + 4].startswith("         ")
    assert all(len(line) <= 80 for line in final[:3])


def test_the_summary_travels_in_the_hello_and_a_bad_one_is_rejected() -> None:
    record = hello("w0", 0, summary={"train_runtime": 2.5, "eval_loss_mean": float("nan")})
    (back,) = decode(encode([record]))
    assert back.info["summary"]["train_runtime"] == 2.5
    assert math.isnan(back.info["summary"]["eval_loss_mean"])
    wire = {"v": 1, "k": "hello", "r": "r", "w": "w0", "s": 0, "t": 1.0}
    for bad in ({"x": "1"}, {"\x1b[2J": 1.0}, [1.0], {"x": True}):
        with pytest.raises(ProtocolError, match="summary"):
            decode([b"r", pack_payload({**wire, "i": {"host": "h", "summary": bad}})])


def test_merged_summary_takes_numbers_and_refuses_the_rest() -> None:
    assert merged_summary({"a": 1.0}, {"b": 2, "a": 3.5}) == {"a": 3.5, "b": 2.0}
    with pytest.raises(TypeError):
        merged_summary({}, {"a": "1.0"})
    with pytest.raises(TypeError):
        merged_summary({}, [("a", 1.0)])
    with pytest.raises(ValueError):
        merged_summary({}, {"bad\nname": 1.0})
    with pytest.raises(ValueError):
        merged_summary({}, {f"n{i}": 1.0 for i in range(MAX_SUMMARY + 1)})


_TRAINING = """
from trainmon_client import Monitor
mon = Monitor({endpoint!r}, run="summed", total_steps=3)
for step in range(3):
    mon.log(step=step, loss=1.0 / (step + 1))
mon.set_summary({{"train_runtime": 4.25}})
mon.set_summary({{"total_flos": 123456789.0}})
mon.close()
"""


def test_watch_prints_the_final_line_of_a_real_monitor() -> None:
    """A real process calls set_summary twice; watch --plain --exit-when-done prints both
    numbers in its final line, and the loss stays the only metric."""
    endpoint = free_endpoint()
    watch = start_cli("watch", "--bind", endpoint, "--exit-when-done", "--plain")
    wait_listening(endpoint)
    code = textwrap.dedent(_TRAINING.format(endpoint=endpoint))
    training = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    try:
        assert training.returncode == 0, training.stderr
        out, err = watch.communicate(timeout=30)
        assert watch.returncode == 0, err
        assert "  final: train_runtime 4.250 s · total_flos 1.235e+08" in out.splitlines(), out
        assert "  loss: last" in out and "train_runtime:" not in out
    finally:
        stop(watch)
