"""The real dashboard in a real terminal (tmux): what a person sees and types."""

from __future__ import annotations

import os
import pty
import re
import shlex
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.helpers import Tmux, command, free_endpoint, start_publisher, stop, wait_for

pytestmark = pytest.mark.tmux


def _watch_pid(endpoint: str) -> int:
    out = subprocess.run(
        ["pgrep", "-f", f"trainmon watch --bind {endpoint}"], capture_output=True, text=True
    ).stdout.split()
    return int(out[0]) if out else 0


def _start_watch(tmux: Tmux, tmp_path: Path, endpoint: str, *extra: str) -> None:
    """Run watch in the tmux shell, saving the terminal settings before and after."""
    tmux.type(
        f"stty -g > {tmp_path}/before; echo MARKER-BEFORE-$((6*7)); "
        f"{command('watch', '--bind', endpoint, *extra)}; "
        f"stty -g > {tmp_path}/after; echo MARKER-AFTER-$((6*7))"
    )
    tmux.wait_text(f"Waiting for records on {endpoint}")


def _assert_restored(tmux: Tmux, tmp_path: Path) -> str:
    screen = tmux.wait_text("MARKER-AFTER-42")
    assert "MARKER-BEFORE-42" in screen, "the shell's screen was not restored"
    assert (tmp_path / "before").read_text() == (tmp_path / "after").read_text()
    cursor = tmux._tmux("display-message", "-p", "-t", "t", "#{cursor_flag}").strip()
    assert cursor == "1", "cursor left hidden"
    return screen


def test_dashboard_shows_a_live_run(tmux: Tmux, tmp_path: Path) -> None:
    """Workers publishing appear with progress, loss, stats and the workers table."""
    endpoint = free_endpoint()
    _start_watch(tmux, tmp_path, endpoint)
    pubs = [
        start_publisher(
            endpoint, count=3000, delay_s=0.005, epochs=10, env={"RANK": str(r), "WORLD_SIZE": "2"}
        )
        for r in range(2)
    ]
    try:
        screen = tmux.wait_text("2 workers")
        for text in (
            "run r",
            "Progress",
            "Epoch",
            "loss",
            "Stats",
            "accuracy",
            "grad norm",
            "Workers",
            "steps/s",
            "running",
            "q quit",
        ):
            assert text in screen, text
        assert re.search(r"Epoch \d+/10", screen)
        tmux.keys("q")
        screen = _assert_restored(tmux, tmp_path)
        assert "run r: running, 2 workers" in screen
    finally:
        for pub in pubs:
            stop(pub)


def test_space_pauses_and_resumes(tmux: Tmux, tmp_path: Path) -> None:
    """Space freezes the view while records keep arriving; Space again resumes."""
    endpoint = free_endpoint()
    _start_watch(tmux, tmp_path, endpoint)
    pub = start_publisher(endpoint, count=4000, delay_s=0.005)
    try:
        tmux.wait_text("running")
        tmux.keys("Space")
        tmux.wait_text("PAUSED")
        frozen = _step_of(tmux.screen())
        screen = tmux.wait_screen(lambda s: _since(s) > 50, what="records counted while paused")
        assert _step_of(screen) == frozen, "the view moved while paused"
        tmux.keys("Space")
        tmux.wait_gone("PAUSED")
        wait_for(lambda: _step_of(tmux.screen()) > frozen, what="the view to move again")
        tmux.keys("q")
        _assert_restored(tmux, tmp_path)
    finally:
        stop(pub)


def _step_of(screen: str) -> int:
    match = re.search(r"step ([\d,]+)", screen)
    return int(match.group(1).replace(",", "")) if match else -1


def _since(screen: str) -> int:
    match = re.search(r"([\d,]+) records arrived since", screen)
    return int(match.group(1).replace(",", "")) if match else -1


def test_q_quits_and_restores_the_terminal_without_data(tmux: Tmux, tmp_path: Path) -> None:
    """q on the waiting screen leaves the terminal exactly as it was."""
    endpoint = free_endpoint()
    _start_watch(tmux, tmp_path, endpoint)
    tmux.keys("q")
    screen = _assert_restored(tmux, tmp_path)
    assert f"no records were received on {endpoint}" in screen


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signals_quit_and_restore(tmux: Tmux, tmp_path: Path, signum: int) -> None:
    """SIGTERM and Ctrl-C (SIGINT) quit cleanly and restore the terminal."""
    endpoint = free_endpoint()
    _start_watch(tmux, tmp_path, endpoint)
    pid = wait_for(lambda: _watch_pid(endpoint), what="the watch process")
    if signum == signal.SIGINT:
        tmux.keys("C-c")
    else:
        import os

        os.kill(pid, signum)
    _assert_restored(tmux, tmp_path)


def test_demo_runs_and_ends_on_its_own(tmux: Tmux) -> None:
    """The demo shows its workers and exits by itself with a summary."""
    tmux.type(f"{command('demo', '--workers', '3', '--epochs', '2')}; echo DEMO-DONE-$((6*7))")
    screen = tmux.wait_text("3 workers", timeout_s=20)
    assert "demo-" in screen and "Epoch" in screen
    screen = tmux.wait_text("DEMO-DONE-42", timeout_s=60)
    assert "finished, 3 workers" in screen


def test_replay_plays_pauses_and_saves_the_screen(tmux: Tmux, tmp_path: Path) -> None:
    """replay draws a recording; space pauses it; e saves an SVG and says where."""
    from trainmon_client.framing import FrameWriter
    from trainmon_client.protocol import Record, encode

    path = tmp_path / "run.tmr"
    with FrameWriter(path) as writer:  # a 100-second run, played at 5x: 20 s
        writer.write(
            encode([Record("hello", "recorded", "w", 0, 1000.0, info={"host": "h", "epochs": 4})])[
                1
            ]
        )
        for step in range(400):
            record = Record(
                "metrics",
                "recorded",
                "w",
                step + 1,
                1000.0 + step / 4,
                step=step,
                epoch=step // 100,
                metrics={"loss": 1.0 / (step + 1)},
            )
            writer.write(encode([record])[1])
    tmux.type(
        f"cd {tmp_path} && {command('replay', str(path), '--speed', '5')}; "
        f"echo REPLAY-DONE-$((6*7))"
    )
    tmux.wait_text("run recorded")
    tmux.keys("Space")
    tmux.wait_text("PAUSED")
    frozen = _step_of(tmux.screen())
    tmux.keys("e")
    screen = tmux.wait_text("screen saved to ")
    saved = sorted(tmp_path.glob("trainmon-recorded-*.svg"))
    assert len(saved) == 1 and saved[0].name in screen.replace("\n", "")
    assert "Epoch" in saved[0].read_text()
    assert _step_of(tmux.screen()) == frozen, "the replay moved while paused"
    tmux.keys("Space")
    tmux.wait_screen(lambda s: _step_of(s) > frozen, what="the replay to go on")
    tmux.keys("q")
    screen = tmux.wait_text("REPLAY-DONE-42")
    assert f"{path}: " in screen.replace("\n", "") and "intact" in screen


def test_chart_and_smoothing_keys(tmux: Tmux, tmp_path: Path) -> None:
    """c switches the main panel to a chart of the whole run; s changes the smoothing."""
    endpoint = free_endpoint()
    _start_watch(tmux, tmp_path, endpoint)
    pub = start_publisher(endpoint, count=4000, delay_s=0.003)
    try:
        tmux.wait_text("loss · last")
        tmux.keys("c")
        tmux.wait_text("smoothed 0.60")
        assert "┤" in tmux.screen()
        tmux.keys("s")
        tmux.wait_text("smoothed 0.80")
        tmux.keys("c")
        tmux.wait_text("loss · last")
        tmux.keys("q")
        _assert_restored(tmux, tmp_path)
    finally:
        stop(pub)


def test_ctrl_z_gives_the_terminal_back_and_fg_resumes(tmux: Tmux, tmp_path: Path) -> None:
    """Ctrl-Z leaves the dashboard with the shell usable; fg brings it back with keys."""
    endpoint = free_endpoint()
    _start_watch(tmux, tmp_path, endpoint)
    tmux.keys("C-z")
    tmux.wait_text("Stopped")
    tmux.type("stty -g > " + str(tmp_path / "suspended") + "; echo SUSPENDED-$((6*7))")
    tmux.wait_text("SUSPENDED-42")
    assert (tmp_path / "suspended").read_text() == (tmp_path / "before").read_text()
    tmux.type("fg")
    tmux.wait_text(f"Waiting for records on {endpoint}")
    tmux.keys("q")  # keys work again without Enter: cbreak is back
    _assert_restored(tmux, tmp_path)


def test_every_key_changes_the_view(tmp_path: Path) -> None:
    """Each key of the help overlay, pressed in a real terminal, does what it says."""
    tmux = Tmux(140, 45)
    endpoint = free_endpoint()
    pubs = []
    try:
        _start_watch(tmux, tmp_path, endpoint)
        pubs.append(start_publisher(endpoint, run="s", count=40_000, delay_s=0.002))
        tmux.wait_text("run s")
        pubs += [
            start_publisher(
                endpoint,
                run="r",
                count=40_000,
                delay_s=0.002,
                env={"RANK": str(rank), "WORLD_SIZE": "2"},
                extra=["--metrics", "40"],
            )
            for rank in range(2)
        ]
        # a run started later does not take the view from the one shown: r switches
        tmux.wait_text("+1 other run (r)")
        assert "run s" in tmux.screen().splitlines()[0]
        tmux.keys("r")
        tmux.wait_text("2 workers")
        steps = [
            ("?", "Keys · ? or Esc closes"),
            ("Escape", "Stats"),
            ("g", "metrics 1–"),
            ("Space", "PAUSED"),
            ("]", "paused view redrawn"),
            ("Space", "? keys"),
            ("]", "page 3/"),
            ("PageUp", "page 2/"),
            ("[", "page 1/"),
            ("g", "Stats"),
            ("m", "accuracy · "),
            ("M", "loss · "),
            ("+", "zoom ×2 · following"),
            ("Left", "steps back"),
            ("l", "following"),
            ("h", "steps back"),
            ("f", "zoom ×2 · following"),
            ("-", "loss · "),
            ("y", "log y"),
            ("i", "5–95% y"),
            ("s", "smoothed 0.80"),
            ("w", "rank 1"),
            ("b", "mean of 2 workers"),
            ("b", "5–95% y · 2 workers"),
            ("o", "vs s"),
            ("R", "Runs (2)"),
            ("", "optim.name  sgd"),  # the shown run's config, under the list
            ("R", "Stats"),
            ("r", "run s"),
            ("r", "run r"),
            ("c", "loss · rank 0 · last"),  # r reset the worker to the lead
        ]
        for key, expected in steps:
            if key:
                tmux.keys(key)
            tmux.wait_text(expected)
        assert "Keys · ?" not in tmux.screen()
        # the layout follows the terminal's size live, down to 80x24
        tmux._tmux("resize-window", "-t", "t", "-x", "80", "-y", "24")
        try:
            screen = tmux.wait_screen(
                lambda s: "Progress" in s and "Workers" in s and "? keys" in s.splitlines()[-1],
                what="the dashboard redrawn at 80x24",
            )
        except AssertionError:
            raise AssertionError(tmux.screen()) from None
        assert len(screen.splitlines()) == 24
        assert "run r" in screen.splitlines()[0]
        tmux.keys("q")
        tmux.wait_text("MARKER-AFTER-42")  # (the summary is longer than 24 lines)
        assert (tmp_path / "before").read_text() == (tmp_path / "after").read_text()
    finally:
        for pub in pubs:
            stop(pub)
        tmux.close()


def test_alerts_show_and_ring_the_bell(tmp_path: Path) -> None:
    """A NaN and an alert() from training appear on the alert line, and with --bell the
    terminal gets a bell for each; without --bell it gets none."""

    def watch_output(*extra: str) -> tuple[bytes, str]:
        endpoint = free_endpoint()
        master, slave = pty.openpty()
        env = dict(os.environ, COLUMNS="120", LINES="40", TERM="xterm-256color")
        proc = subprocess.Popen(
            shlex.split(command("watch", "--bind", endpoint, "--no-interactive", *extra)),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
        )
        os.close(slave)
        chunks: list[bytes] = []

        def read() -> None:
            while True:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    return
                if not data:
                    return
                chunks.append(data)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        pub = start_publisher(
            endpoint, count=400, delay_s=0.005, extra=["--nan-at", "50", "--alert-at", "120"]
        )
        try:
            wait_for(
                lambda: b"custom title from training" in b"".join(chunks),
                20,
                0.05,
                "the client's alert on screen",
            )
            wait_for(lambda: b"NaN/Inf in loss" in b"".join(chunks), 10, 0.05, "the NaN alert")
        finally:
            stop(pub)
            stop(proc)  # SIGTERM, then SIGKILL if it does not go
            reader.join(timeout=2)
            os.close(master)
        output = b"".join(chunks)
        return output, output.decode(errors="replace")

    raw, _ = watch_output("--bell")
    assert raw.count(b"\x07") >= 2, "one bell per alert: the NaN and the client's"
    quiet, _ = watch_output()
    assert b"\x07" not in quiet


_EPOCHS_ONLY = """
import sys, time
from trainmon_client import Monitor

mon = Monitor(sys.argv[1], run="epochs", total_epochs=3)
for epoch in range(3):
    mon.set_epoch(epoch)
    for _ in range(100):
        mon.log(loss=1.0 / (epoch + 1))
        time.sleep(0.05)
mon.close()
"""


def _epoch_line(screen: str) -> str:
    return next((line for line in screen.splitlines() if "Epoch" in line), "")


def test_progress_with_total_epochs_only(tmux: Tmux, tmp_path: Path) -> None:
    """A script that gives only total_epochs and calls set_epoch: in the first epoch the
    dashboard shows the epoch and the step, no made-up 0% and no ETA; from the second
    the percent and the ETA come from the steps per epoch seen."""
    script = tmp_path / "epochs_only.py"
    script.write_text(_EPOCHS_ONLY)
    endpoint = free_endpoint()
    _start_watch(tmux, tmp_path, endpoint)
    pub = subprocess.Popen(
        [sys.executable, str(script), endpoint],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        first = _epoch_line(
            tmux.wait_screen(
                lambda s: re.search(r"Epoch 1/3 .*step [1-9]\d", _epoch_line(s)),
                what="the first epoch at step 10 or more",
            )
        )
        assert "progress known once an epoch ends" in first
        assert "%" not in first and "ETA" not in first
        second = _epoch_line(
            tmux.wait_screen(
                lambda s: re.search(r"Epoch 2/3 .*\b[345]\d% +ETA 00:\d\d", _epoch_line(s)),
                timeout_s=20,
                what="the second epoch with a percent and an ETA",
            )
        )
        assert re.search(r"step 1\d\d", second), second
        tmux.keys("q")
        _assert_restored(tmux, tmp_path)
    finally:
        stop(pub)
