"""The Hugging Face Trainer with TrainmonCallback, for real: a tiny BERT made from a
config (random weights, nothing downloaded) trains in a subprocess (tests/
hf_train_proc.py) while a real ``trainmon watch --plain --exit-when-done --record``
receives; every value in the Trainer's own ``state.log_history`` must have arrived with
its step and (fractional) epoch, the end-of-run numbers in the summary's final line."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import free_endpoint, start_cli, stop, wait_listening
from trainmon.sources.export import unique_metrics
from trainmon.sources.recording import load
from trainmon.view.format import format_value
from trainmon_client.protocol import Record

TRAINING = Path(__file__).resolve().parent / "hf_train_proc.py"
# Looked up, not imported (importing them here would only slow the test process). CI
# installs them (pinned in tests/constraints.txt), so there a missing one fails.
_MISSING = [m for m in ("torch", "accelerate", "transformers") if not importlib.util.find_spec(m)]
needs_transformers = pytest.mark.skipif(
    bool(_MISSING) and not os.environ.get("CI"),
    reason=f"needs {', '.join(_MISSING)}: pip install -c tests/constraints.txt "
    "'transformers[torch]' accelerate",
)
# What the Trainer logs at the end of training or of an evaluation: the run's summary.
FINAL = {
    "train_runtime",
    "train_samples_per_second",
    "train_steps_per_second",
    "train_loss",
    "total_flos",
    "eval_runtime",
    "eval_samples_per_second",
    "eval_steps_per_second",
    "eval_model_preparation_time",  # (an evaluation that prepared the model itself)
}
CHARTED = {"loss", "grad_norm", "learning_rate", "eval_loss"}


@dataclass
class Outcome:
    histories: list[list[dict[str, Any]]]  # each rank's trainer.state.log_history
    records: list[Record]  # everything the monitor recorded
    printed: str  # watch --plain's standard output, its exit summary at the end

    def received(self, worker: str | None = None) -> list[tuple[Any, ...]]:
        """(step, epoch, name, value) of every metric value received (once each)."""
        return sorted(
            (record.step, record.epoch, name, value)
            for record in unique_metrics(self.records)
            if worker is None or record.worker == worker
            for name, value in record.metrics.items()
        )

    def hellos(self) -> list[Record]:
        return [record for record in self.records if record.kind == "hello"]


def _expected(history: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """(step, epoch, name, value) of every charted value the Trainer logged."""
    return sorted(
        (entry["step"], entry.get("epoch"), name, value)
        for entry in history
        for name, value in entry.items()
        if name not in ("step", "epoch") and name not in FINAL
    )


def _train(tmp_path: Path, *options: str, ranks: int = 1) -> Outcome:
    """Run the training under a real monitor; what both said and recorded."""
    endpoint = free_endpoint()
    recording = tmp_path / "run.tmr"
    watch = start_cli(
        "watch", "--bind", endpoint, "--plain", "--exit-when-done", "--record", str(recording)
    )
    env = dict(
        os.environ,
        TRAINMON_ENDPOINT=endpoint,
        OMP_NUM_THREADS="1",
        GLOO_SOCKET_IFNAME="lo",
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
    )
    script = [str(TRAINING), str(tmp_path / "history"), *options]
    if ranks > 1:
        launch = ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}"]
        script = [*launch, *script]
    try:
        wait_listening(endpoint)
        job = subprocess.run(
            [sys.executable, *script],
            env=env,
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert job.returncode == 0, job.stdout[-4000:] + job.stderr[-4000:]
        printed, said = watch.communicate(timeout=60)
        assert watch.returncode == 0, said
    finally:
        stop(watch)
    histories = [
        json.loads((tmp_path / f"history.{rank}.json").read_text()) for rank in range(ranks)
    ]
    return Outcome(histories, load([recording]).records, printed)


def _final_text(printed: str) -> str:
    """The summary's final: line(s), joined."""
    lines = printed.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("  final: "))
    following = [line for line in lines[at + 1 :] if line.startswith("         ")]
    return " ".join([lines[at], *following])


def _check_summary(outcome: Outcome) -> None:
    """The newest hello's summary holds each end-of-run number's last value as one
    rank's Trainer logged it, the final line prints it, and none is a metric."""
    lasts = [
        {name: value for entry in history for name, value in entry.items() if name in FINAL}
        for history in outcome.histories
    ]
    summaries = [h.info["summary"] for h in outcome.hellos() if "summary" in h.info]
    newest = summaries[-1]  # (the records are in time order)
    assert newest in lasts and {"train_runtime", "total_flos", "eval_runtime"} <= set(newest)
    final = _final_text(outcome.printed)
    assert f"train_runtime {format_value(newest['train_runtime'])} s" in final, final
    assert f"total_flos {format_value(newest['total_flos'])}" in final, final
    assert not {name for r in unique_metrics(outcome.records) for name in r.metrics} & FINAL


@needs_transformers
def test_two_and_a_half_epochs_arrive_as_the_trainer_logged_them(tmp_path: Path) -> None:
    """num_train_epochs=2.5 (200 steps, a log every 5, an evaluation every 50, then
    trainer.evaluate()): every value with its step and fractional epoch; the totals, the
    config with its token masked, and the summary."""
    outcome = _train(tmp_path, "--epochs", "2.5")
    (history,) = outcome.histories
    expected = _expected(history)
    assert {name for *_, name, _ in expected} == CHARTED
    assert len(expected) == 40 * 3 + 5  # loss, grad_norm, lr every 5 steps; 5 eval_loss
    assert outcome.received() == expected
    epochs = {epoch for _, epoch, *_ in expected}
    assert 2.5 in epochs and 0.0625 in epochs  # fractional, as the Trainer counts them
    assert "epoch" not in {name for *_, name, _ in outcome.received()}
    info = outcome.hellos()[-1].info
    assert (info["steps"], info["epochs"], info["epochs_f"]) == (200, 3, 2.5)
    config = info["config"]
    assert config["num_train_epochs"] == 2.5 and config["learning_rate"] == 0.003
    assert config["hub_token"] == "***"  # masked by the client (the Trainer sends <HUB_TOKEN>)
    assert {"num_train_epochs", "learning_rate", "logging_steps"} <= set(list(config)[:20])
    assert b"hf_not_a_real_token" not in (tmp_path / "run.tmr").read_bytes()
    _check_summary(outcome)
    assert "(ended early" not in outcome.printed


@needs_transformers
def test_evaluate_without_training_is_published(tmp_path: Path) -> None:
    """trainer.evaluate() alone: eval_loss at step 0, its speed in the summary."""
    outcome = _train(tmp_path, "--evaluate-only")
    (history,) = outcome.histories
    expected = _expected(history)
    assert [(step, name) for step, _, name, _ in expected] == [(0, "eval_loss")]
    assert outcome.received() == expected
    summaries = [h.info["summary"] for h in outcome.hellos() if "summary" in h.info]
    assert summaries[-1] == {n: v for n, v in history[-1].items() if n in FINAL}
    assert set(summaries[-1]) == {n for n in FINAL if n.startswith("eval_")}
    runtime = summaries[-1]["eval_runtime"]
    assert f"eval_runtime {format_value(runtime)} s" in _final_text(outcome.printed)


@needs_transformers
def test_two_ranks_with_torchrun_each_publish_with_their_rank(tmp_path: Path) -> None:
    """torchrun --nproc-per-node 2 (gloo on the CPU), max_steps=60: both ranks publish,
    ranks 0 and 1 of world 2, each with every value its own Trainer logged."""
    outcome = _train(tmp_path, "--max-steps", "60", "--train-size", "320", ranks=2)
    hellos = {h.worker: h.info for h in outcome.hellos()}
    ranks = {info.get("rank"): worker for worker, info in hellos.items()}
    assert sorted(ranks) == [0, 1] and {info["world"] for info in hellos.values()} == {2}
    for rank, worker in ranks.items():
        history = outcome.histories[rank]
        expected = _expected(history)
        assert len(expected) == 12 * 3 + 3  # a log every 5 of 60 steps; eval at 50, 60, after
        assert outcome.received(worker) == expected
        assert hellos[worker]["steps"] == 60
    assert "2 workers" in outcome.printed
    _check_summary(outcome)


def test_importing_the_client_loads_no_framework() -> None:
    """import trainmon_client (the Monitor, the integrations package) loads no framework."""
    probe = (
        "import sys, trainmon_client, trainmon_client.integrations; trainmon_client.Monitor; "
        "print(sorted(m for m in ('transformers', 'torch', 'accelerate') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_integration_without_transformers_says_what_to_install() -> None:
    """With transformers not importable, importing the integration raises ImportError
    naming the package to install."""
    probe = (
        "import sys; sys.modules['transformers'] = None\n"
        "try:\n"
        "    import trainmon_client.integrations.transformers\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert "pip install 'transformers[torch]'" in out.stdout


_PROBE = """
import json
from trainmon_client.integrations.transformers import TrainmonCallback, split_logs
logs = {"loss": 0.5, "epoch": 1.5, "eval_accuracy": 1, "note": "text", "total_flos": 3.0,
        "train_runtime": 1.5, "eval_samples_per_second": 9.0, "train_mem_cpu_alloc_delta": 7}
print(json.dumps(split_logs(logs)))
callback = TrainmonCallback(no_such_argument=1)  # Monitor() will refuse it
for _ in range(3):
    callback.on_log(None, None, None, logs=logs)
print(callback.monitor)
"""


@needs_transformers
def test_the_logs_split_and_a_failing_callback_never_stops_training() -> None:
    """split_logs: epoch and texts left out, end-of-run numbers apart; a callback whose
    Monitor cannot be made says so once and returns (the Trainer goes on)."""
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    split, monitor = out.stdout.splitlines()
    assert json.loads(split) == [
        {"loss": 0.5, "eval_accuracy": 1},
        {
            "total_flos": 3.0,
            "train_runtime": 1.5,
            "eval_samples_per_second": 9.0,
            "train_mem_cpu_alloc_delta": 7,
        },
    ]
    assert monitor == "None"
    assert out.stderr.count("TrainmonCallback on log:") == 1, out.stderr
    assert "no_such_argument" in out.stderr
