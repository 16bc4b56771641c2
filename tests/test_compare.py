"""Runs compared in a real terminal (tmux): `trainmon compare` on runs kept by real
training processes (nobody watching, no flag set), the seconds axis, `watch --compare`
under a live run, and the errors a person can make."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import Tmux, command, free_endpoint, start_cli, start_publisher, stop

pytestmark = pytest.mark.tmux

# A training script: loss = SCALE / (step + 1) for COUNT steps, published where nobody
# listens, so the run is kept only by default in $TRAINMON_DIR.
TRAIN = """
import sys, time
from trainmon_client import Monitor
endpoint, name, scale, count = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
mon = Monitor(endpoint, run=name, total_steps=count)
for step in range(count):
    mon.log(loss=scale / (step + 1), step=step)
    time.sleep(0.001)
mon.close()
"""


def train(name: str, scale: float, count: int) -> None:
    """A real training process that runs to its end, nobody watching."""
    done = subprocess.run(
        [sys.executable, "-c", TRAIN, free_endpoint(), name, str(scale), str(count)],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    assert "kept in" in done.stderr  # (said by the nobody-watched line)


@pytest.fixture
def kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data directory of this test's own holding two kept runs, alpha and beta."""
    monkeypatch.setenv("TRAINMON_DIR", str(tmp_path / "data"))
    train("alpha", 1.0, 300)
    train("beta", 2.0, 200)
    return tmp_path / "data"


def test_compare_draws_both_runs_and_their_difference(kept: Path, tmux: Tmux) -> None:
    tmux.type(command("compare", "alp", "beta") + "; echo ENDED-$((6*7))")  # a prefix names a run
    screen = tmux.wait_text("vs beta (magenta)")
    assert "run alpha" in screen and "300 steps" in screen
    # beta - alpha at step 199 is 2/200 - 1/200: shown run minus overlaid
    assert re.search(r"vs beta\s+-0\.005000 at step 199", screen)
    coloured = tmux._tmux("capture-pane", "-p", "-e", "-t", "t")
    chart = "\n".join(line for line in coloured.splitlines() if "┤" in line or "│" in line)
    assert "\x1b[36m" in chart and "\x1b[35m" in chart  # both curves: cyan and magenta
    assert "t x in seconds" in screen
    # runs that ended: a worker's last seen counts from its own run's end, not "ago"
    # from beta's (which trained after alpha)
    assert "at the end" in screen and " ago" not in screen
    tmux.keys("t")
    screen = tmux.wait_text("x in seconds since each run's start")
    assert re.search(r"└0\.0 s\s+\d+\.\d s", screen)
    tmux.keys("t")
    tmux.wait_text("300 steps")
    tmux.keys("r")  # beta shown, alpha under it
    screen = tmux.wait_text("run beta")
    assert "vs alpha (magenta)" in screen
    assert re.search(r"vs alpha\s+\+0\.005000 at step 199", screen)
    tmux.keys("q")
    tmux.wait_text("ENDED-42", timeout_s=10)


def test_compare_plain_prints_a_table(kept: Path) -> None:
    proc = start_cli("compare", "alpha", "beta", "--plain")
    try:
        out, err = proc.communicate(timeout=30)
    finally:
        stop(proc)
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert re.search(r"run\s+metric\s+last\s+best\s+vs alpha", lines[0])
    assert re.search(r"alpha\s+loss\s+0\.003333\s+0\.003333\s+–", lines[1])
    assert re.search(r"beta\s+loss\s+0\.01000\s+0\.01000\s+\+0\.005000 at step 199", lines[2])


def test_the_same_name_on_two_days_is_told_apart(kept: Path) -> None:
    """alpha yesterday (its folder copied, as the layout writes it, a day earlier) and
    alpha today: named by their start; the same run given twice: numbered."""
    runs = kept / "runs"
    today = next(runs.glob("*_alpha"))
    meta = json.loads((today / "run.json").read_text())
    yesterday = runs / time.strftime("%Y%m%d-%H%M%S_alpha", time.localtime(meta["started"] - 86400))
    shutil.copytree(today, yesterday)
    meta["started"] -= 86400
    (yesterday / "run.json").write_text(json.dumps(meta))
    proc = start_cli("compare", "alpha", yesterday.name, "alpha", "--plain")
    try:
        out, err = proc.communicate(timeout=30)
    finally:
        stop(proc)
    assert proc.returncode == 0, err
    names = [re.split(r"\s{2,}", line.strip())[0] for line in out.splitlines()[1:]]
    when = "%Y-%m-%d %H:%M:%S"
    assert names == [
        f"alpha ({time.strftime(when, time.localtime(meta['started'] + 86400))})",
        f"alpha ({time.strftime(when, time.localtime(meta['started']))})",
        f"alpha ({time.strftime(when, time.localtime(meta['started'] + 86400))}) #2",
    ]
    assert "0 at step 299" in out  # the same records: no difference


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("alpha",), "compare needs two runs or more"),
        (("alpha", "nosuchrun"), "no file or kept run nosuchrun"),
    ],
)
def test_errors_are_one_clear_line(kept: Path, args: tuple[str, ...], said: str) -> None:
    proc = start_cli("compare", *args)
    try:
        _, err = proc.communicate(timeout=30)
    finally:
        stop(proc)
    assert proc.returncode == 2
    assert said in err and "Traceback" not in err


def test_an_ambiguous_prefix_lists_the_matches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRAINMON_DIR", str(tmp_path / "data"))
    train("lr-0.1", 1.0, 20)
    train("lr-0.01", 2.0, 20)
    proc = start_cli("compare", "lr-", "lr-0.1")
    try:
        _, err = proc.communicate(timeout=30)
    finally:
        stop(proc)
    assert proc.returncode == 2 and "Traceback" not in err
    assert "names several runs" in err and "lr-0.1" in err and "lr-0.01" in err


def test_watch_compare_draws_the_kept_run_under_the_live_one(kept: Path, tmux: Tmux) -> None:
    endpoint = free_endpoint()
    tmux.type(command("watch", "--bind", endpoint, "--compare", "beta") + "; echo ENDED-$((6*7))")
    tmux.wait_text(f"Waiting for records on {endpoint}")  # the past run is not shown
    pub = start_publisher(endpoint, run="live", count=3000, delay_s=0.002)
    try:
        screen = tmux.wait_screen(
            lambda s: "run live" in s and "-0.005000 at step 199" in s,
            what="the live run with the kept one under it",
            timeout_s=15,
        )
        assert "· vs beta (kept" in screen  # the chart's legend (cut by the chart's width)
        # the stats: live (1/(step+1)) minus beta (2/(step+1)) at beta's last step, the
        # label cut to the others' width (the legend names the run whole)
        assert re.search(r"│ vs beta \(…\s-0\.005000 at step 199", screen)
        coloured = tmux._tmux("capture-pane", "-p", "-e", "-t", "t")
        assert "\x1b[35m" in coloured  # the kept run's curve, magenta
        tmux.keys("R")
        screen = tmux.wait_text("Runs (2)")
        assert re.search(r"◆\s+beta \(kept", screen) and re.search(r"▶\s+live", screen)
        tmux.keys("q")
        tmux.wait_text("ENDED-42", timeout_s=10)
    finally:
        stop(pub)


def test_watch_compare_with_an_unknown_run_is_one_clear_line(kept: Path) -> None:
    proc = start_cli("watch", "--bind", free_endpoint(), "--compare", "nosuchrun", "--plain")
    try:
        _, err = proc.communicate(timeout=30)
    finally:
        stop(proc)
    assert proc.returncode == 2 and "Traceback" not in err
    assert "no file or kept run nosuchrun" in err and "alpha" in err and "beta" in err


def test_compare_help_says_what_plain_does() -> None:
    """compare --plain prints a table once: its help says so, not the status lines the
    other commands' --plain print, and the status lines' interval is not listed."""
    proc = start_cli("compare", "--help")
    try:
        out, err = proc.communicate(timeout=30)
    finally:
        stop(proc)
    assert proc.returncode == 0, err
    said = " ".join(out.split())
    assert "--plain No dashboard: print a table (each run's main metric" in said
    assert "status lines" not in said and "--plain-interval" not in said


def test_compare_a_long_run_at_the_latest_step_both_have(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run of 20,000 steps (its first 10,000 only in buckets on the dashboard) against
    one of 1,200: the difference is at step 1,199, read from the records on disk."""
    monkeypatch.setenv("TRAINMON_DIR", str(tmp_path / "data"))
    fast = TRAIN.replace("time.sleep(0.001)", "time.sleep(0.001) if step % 500 == 0 else None")
    for name, scale, count in (("long", 1.0, 20_000), ("short", 2.0, 1_200)):
        done = subprocess.run(
            [sys.executable, "-c", fast, free_endpoint(), name, str(scale), str(count)],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 0, done.stderr
    proc = start_cli("compare", "short", "long", "--plain")
    try:
        out, err = proc.communicate(timeout=30)
    finally:
        stop(proc)
    assert proc.returncode == 0, err
    # short - long at step 1,199: 2/1200 - 1/1200
    assert re.search(r"long\s+loss\s+5\.000e-05\s+5\.000e-05\s+-8\.333e-04 at step 1,199", out), out
