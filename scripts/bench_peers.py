"""One logging call of trainmon beside other experiment trackers; prints one table.

Run ``python scripts/bench_peers.py [--calls N] [--budget S] [--quick]``. Every row is
its own process (``--one ROW``, which prints one line of JSON): the tool is imported,
set up, called ``N`` times (or until ``--budget`` seconds have passed) and closed. Each
call logs three scalars (loss, accuracy, grad_norm) at a step, the way each tool's own
documentation shows:

- trainmon: ``Monitor.log(loss=, accuracy=, grad_norm=, step=i)``, nobody listening,
  and with a real ``python -m trainmon watch --plain`` reading;
- tensorboardX: ``SummaryWriter(tmp).add_scalar(name, value, i)``, three times;
- W&B, offline: ``wandb.init(mode="offline", dir=tmp)``, ``run.log({...}, step=i)``;
- trackio: ``trackio.init(project=...)``, ``trackio.log({...}, step=i)``, local store
  in a temporary directory;
- MLflow: a temporary ``sqlite:`` store (``file:`` without SQLAlchemy),
  ``mlflow.start_run()``, ``mlflow.log_metrics({...}, step=i)``.

Baselines in the same run, measured the same way: an empty function with ``log``'s
shape, ``list.append`` of the three values in a dict, and ``print`` of them to
``/dev/null``. Each call is timed alone with ``perf_counter_ns``, gc off, nothing
subtracted, in bursts (100 calls, then 0.5 ms asleep with the GIL free, as a training
step in C/CUDA code does). Reported: median, p90, p99 and max per call in us; the
seconds to import the tool, to set it up (init) and to close it (finish, flush); the
CPU of this process per call (every thread of it, close included; not that of helper
processes such as W&B's service). A tool that is not installed gets a row saying how
to install it; one that fails gets a row with its error.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# Measured as before runs were kept by default, and nothing kept in the user's data
# directory (set TRAINMON_RECORD=1 to measure with keeping on).
os.environ.setdefault("TRAINMON_RECORD", "0")

X, Y, Z = 0.4321, 0.8765, 1.2345
BURST, BURST_SLEEP_S = 100, 0.0005
Setup = tuple[Callable[[int], None], Callable[[], None]]  # (call(step), close())
ROWS = {  # row -> (label, module imported first, what to install when it is missing)
    "empty": ("baseline: empty call", None, None),
    "append": ("baseline: list.append(dict)", None, None),
    "print": ("baseline: print to /dev/null", None, None),
    "trainmon": ("trainmon, nobody listening", "trainmon_client", "trainmon-client"),
    "trainmon-watch": ("trainmon, watch reading", "trainmon_client", "trainmon-client"),
    "tensorboardx": ("tensorboardX", "tensorboardX", "tensorboardX"),
    "wandb": ("W&B, offline", "wandb", "wandb"),
    "trackio": ("trackio, local", "trackio", "trackio"),
    "mlflow": ("MLflow, local store", "mlflow", "mlflow"),
}


def empty(*, loss: float, accuracy: float, grad_norm: float, step: int) -> None:
    """Baseline: the shape of a logging call, doing nothing."""


def setup_baseline(row: str, tmp: str) -> Setup:
    if row == "empty":
        return (lambda i: empty(loss=X, accuracy=Y, grad_norm=Z, step=i)), (lambda: None)
    if row == "append":
        kept: list[dict[str, float]] = []
        return (lambda i: kept.append({"loss": X, "accuracy": Y, "grad_norm": Z})), kept.clear
    sink = open(os.devnull, "w")  # noqa: SIM115 (closed by the returned close)
    return (lambda i: print(i, X, Y, Z, file=sink)), sink.close


def free_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


@contextlib.contextmanager
def watching(endpoint: str) -> Iterator[None]:
    """A real ``trainmon watch --plain`` bound to ``endpoint``, stopped after."""
    cmd = [sys.executable, "-m", "trainmon", "watch", "--plain", "--bind", endpoint]
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def setup_trainmon(endpoint: str, watched: bool) -> Setup:
    from trainmon_client import Monitor

    mon = Monitor(endpoint, run="bench-peers")
    if watched:  # a watch is bound there: time only once it has subscribed
        sys.path.insert(0, str(Path(__file__).parent))
        from bench_client import wait_subscribed

        wait_subscribed(mon)
    return (lambda i: mon.log(loss=X, accuracy=Y, grad_norm=Z, step=i)), mon.close


def setup_tensorboardx(tmp: str) -> Setup:
    from tensorboardX import SummaryWriter

    writer = SummaryWriter(logdir=tmp)

    def call(i: int) -> None:
        writer.add_scalar("loss", X, i)
        writer.add_scalar("accuracy", Y, i)
        writer.add_scalar("grad_norm", Z, i)

    return call, writer.close


def setup_wandb(tmp: str) -> Setup:
    import wandb

    run = wandb.init(project="bench-peers", dir=tmp, mode="offline")
    return (lambda i: run.log({"loss": X, "accuracy": Y, "grad_norm": Z}, step=i)), run.finish


def setup_trackio(tmp: str) -> Setup:
    import trackio

    trackio.init(project="bench-peers")
    metrics = {"loss": X, "accuracy": Y, "grad_norm": Z}
    return (lambda i: trackio.log(metrics, step=i)), trackio.finish


def setup_mlflow(tmp: str) -> Setup:
    import mlflow

    try:
        import sqlalchemy  # noqa: F401 (MLflow's sqlite store needs it)

        mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
    except ImportError:
        mlflow.set_tracking_uri(Path(tmp, "mlruns").as_uri())
    mlflow.start_run()
    metrics = {"loss": X, "accuracy": Y, "grad_norm": Z}
    return (lambda i: mlflow.log_metrics(metrics, step=i)), mlflow.end_run


def set_up(row: str, tmp: str, stack: contextlib.ExitStack) -> Setup:
    if row in ("empty", "append", "print"):
        return setup_baseline(row, tmp)
    if row == "trainmon":
        return setup_trainmon(free_endpoint(), watched=False)  # nobody binds it
    if row == "trainmon-watch":
        endpoint = free_endpoint()
        stack.enter_context(watching(endpoint))
        return setup_trainmon(endpoint, watched=True)
    setup: Callable[[str], Setup] = globals()[f"setup_{row}"]
    return setup(tmp)


def time_calls(call: Callable[[int], None], n: int, budget_s: float) -> list[int]:
    """Nanoseconds of each call, bursts pacing; stops early after ``budget_s``."""
    pc, sleep = time.perf_counter_ns, time.sleep
    stop = pc() + int(budget_s * 1e9)
    out: list[int] = []
    for i in range(n):
        t0 = pc()
        call(i)
        t1 = pc()
        out.append(t1 - t0)
        if i % BURST == BURST - 1:
            if t1 > stop:
                break
            sleep(BURST_SLEEP_S)
    return out


def one(row: str, n: int, budget_s: float) -> dict[str, Any]:
    """Measure one row in this process; the result the parent tabulates."""
    _, module, install = ROWS[row]
    result: dict[str, Any] = {"row": row}
    t0 = time.perf_counter()
    if module is not None:
        try:
            imported = __import__(module)
        except ImportError:
            return result | {"missing": f"not installed (pip install {install})"}
        result["version"] = getattr(imported, "__version__", "")
    t1 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        call, close = set_up(row, tmp, stack)
        t2 = time.perf_counter()
        gc.collect()
        gc.disable()
        cpu0 = time.process_time()
        samples = time_calls(call, n, budget_s)
        t3 = time.perf_counter()
        close()
        cpu = time.process_time() - cpu0
        t4 = time.perf_counter()
        gc.enable()
    samples.sort()

    def q(frac: float) -> float:
        return samples[min(len(samples) - 1, int(frac * len(samples)))] / 1000

    return result | {
        "calls": len(samples),
        "median_us": q(0.5),
        "p90_us": q(0.9),
        "p99_us": q(0.99),
        "max_us": samples[-1] / 1000,
        "import_s": t1 - t0,
        "setup_s": t2 - t1,
        "close_s": t4 - t3,
        "cpu_us": cpu * 1e6 / len(samples),
    }


def run_row(row: str, n: int, budget_s: float) -> dict[str, Any]:
    """Run ``--one ROW`` in a fresh interpreter; its last line of output is the JSON."""
    cmd = [sys.executable, __file__, "--one", row, "--calls", str(n), "--budget", str(budget_s)]
    env = os.environ | {"WANDB_SILENT": "true", "WANDB_MODE": "offline"}
    with tempfile.TemporaryDirectory() as home:  # trackio and others keep files in ~
        env |= {"TRACKIO_DIR": home, "HF_HOME": home, "WANDB_DIR": home}
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=budget_s + 300)
    lines = done.stdout.strip().splitlines()
    with contextlib.suppress(IndexError, ValueError):
        found: dict[str, Any] = json.loads(lines[-1])
        return found
    error = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
    return {"row": row, "missing": f"failed: {error[:70]}"}


def table(results: list[dict[str, Any]], n: int, budget_s: float, elapsed: float) -> None:
    print(
        f"trainmon beside other trackers: up to {n:,} calls per row (or {budget_s:g} s), "
        f"3 scalars per call, bursts pacing, Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs, {elapsed:.0f} s"
    )
    print(
        f"\n{'per call in us; setup/close in s':<34}{'median':>9}{'p90':>9}{'p99':>9}"
        f"{'max':>10}{'CPU':>9}{'calls':>8}{'import':>8}{'setup':>7}{'close':>7}"
    )
    for r in results:
        label = ROWS[r["row"]][0] + (f" {r['version']}" if r.get("version") else "")
        if "missing" in r:
            print(f"{label:<34}{r['missing']}")
            continue
        print(
            f"{label:<34}{r['median_us']:>9.2f}{r['p90_us']:>9.2f}{r['p99_us']:>9.2f}"
            f"{r['max_us']:>10.0f}{r['cpu_us']:>9.2f}{r['calls']:>8,}{r['import_s']:>8.2f}"
            f"{r['setup_s']:>7.2f}{r['close_s']:>7.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=20_000, help="calls per row at most")
    parser.add_argument("--budget", type=float, default=20.0, help="seconds per row at most")
    parser.add_argument("--quick", action="store_true", help="2,000 calls, 5 s per row")
    parser.add_argument("--one", choices=ROWS, help=argparse.SUPPRESS)
    parser.add_argument("rows", nargs="*", help=f"rows (default: all): {', '.join(ROWS)}")
    args = parser.parse_args()
    if unknown := set(args.rows) - set(ROWS):
        parser.error(f"unknown rows: {', '.join(sorted(unknown))}")
    n, budget = (2_000, 5.0) if args.quick else (max(args.calls, 100), args.budget)
    if args.one:
        print(json.dumps(one(args.one, n, budget)))
        return
    started = time.monotonic()
    results = [run_row(row, n, budget) for row in args.rows or ROWS]
    table(results, n, budget, time.monotonic() - started)


if __name__ == "__main__":
    main()
