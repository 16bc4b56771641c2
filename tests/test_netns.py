"""Two real network hosts (network namespaces joined by a veth pair), and a cut link.

Training runs in one namespace and binds; the monitor runs in the other and
connects, as across machines. Mid-run the link is taken down for seven seconds and
brought back: the monitor shows the worker lost, then running again, the outage in
its summary, and the run complete; no process hangs. Needs root (CI runs as root).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import PUBLISHER, stop, wait_for

if os.geteuid() != 0 and not os.environ.get("CI"):  # in CI (root) it always runs
    pytest.skip("network namespaces need root", allow_module_level=True)

SUBNET = "10.231.77"  # a private subnet that exists only between these two namespaces


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@pytest.fixture
def hosts() -> Iterator[tuple[str, str, str]]:
    """Two namespaces, 'train' at .1 and 'watch' at .2, and the train side's link name."""
    tag = uuid.uuid4().hex[:6]
    train, watch = f"tmt{tag}", f"tmw{tag}"
    link_train, link_watch = f"vt{tag}", f"vw{tag}"
    _ip("netns", "add", train)
    try:
        _ip("netns", "add", watch)
        _ip("link", "add", link_train, "type", "veth", "peer", "name", link_watch)
        _ip("link", "set", link_train, "netns", train)
        _ip("link", "set", link_watch, "netns", watch)
        for ns, link, host in ((train, link_train, 1), (watch, link_watch, 2)):
            _ip("-n", ns, "addr", "add", f"{SUBNET}.{host}/24", "dev", link)
            _ip("-n", ns, "link", "set", link, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield train, watch, link_train
    finally:
        for ns in (train, watch):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


class _Lines:
    """Collects a process's stdout lines in a thread, to poll them with a deadline."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self.proc = proc
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def seen(self, text: str, after: int = 0) -> int:
        """Index past the first line from ``after`` on that contains ``text``, or 0."""
        for index in range(after, len(self.lines)):
            if text in self.lines[index]:
                return index + 1
        return 0


def test_cut_link_between_two_hosts(hosts: tuple[str, str, str], tmp_path: Path) -> None:
    """Across two hosts, a link cut for 7 s shows as lost, then recovers with nothing lost."""
    train, watch, link = hosts
    endpoint = f"tcp://{SUBNET}.1:5556"
    pub = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            train,
            sys.executable,
            str(PUBLISHER),
            endpoint,
            "--bind",
            "--count",
            "2500",
            "--delay",
            "0.01",
            "--epochs",
            "5",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    mon = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            watch,
            sys.executable,
            "-m",
            "trainmon",
            "watch",
            "--plain",
            "--plain-interval",
            "0.5",
            "--connect",
            endpoint,
            "--exit-when-done",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out = _Lines(mon)
    try:
        running = wait_for(
            lambda: out.seen("· running ·"),
            timeout_s=20,
            what="the monitor to see the worker running",
        )
        _ip("-n", train, "link", "set", link, "down")
        cut_at = time.monotonic()
        try:
            lost = wait_for(
                lambda: out.seen("· lost ·", running), timeout_s=15, what="the worker shown as lost"
            )
            time.sleep(max(0.0, 7.0 - (time.monotonic() - cut_at)))  # the outage itself
        finally:
            _ip("-n", train, "link", "set", link, "up")
        wait_for(
            lambda: out.seen("· running ·", lost),
            timeout_s=20,
            what="the worker running again after the link came back",
        )
        assert mon.wait(timeout=60) == 0, "\n".join(out.lines)
        assert pub.wait(timeout=30) == 0
        summary = "\n".join(out.lines[-10:])
        assert "run r: finished, 1 worker" in summary
        assert "lost: silent for" in summary, "the outage was raised as an alert"
        assert "records received 2502" in summary, summary  # hello + 2500 + bye
        assert "nothing missed" in summary and "1 outage (longest" in summary, summary
    finally:
        stop(mon)
        stop(pub)
