from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import Receiver, Tmux, free_endpoint
from trainmon_client.store import runs_dir


@pytest.fixture(autouse=True)
def _plain_colour_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests do not depend on the caller's colour settings, endpoint, run name or
    system-metrics switch."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("TRAINMON_ENDPOINT", raising=False)
    monkeypatch.delenv("TRAINMON_RUN", raising=False)
    # System metrics (on by default) add sys/* records about once a second: tests that
    # compare every record received would see them. Those about them turn them on.
    monkeypatch.setenv("TRAINMON_SYSTEM", "0")


@pytest.fixture(autouse=True, scope="session")
def _own_socket_dir() -> Iterator[None]:
    """Monitors and clients on the default endpoint meet in a directory of this test
    session's own, not the user's real one (a monitor of the user's may be there)."""
    where = tempfile.mkdtemp(prefix="tm-")  # short: an ipc path holds 107 bytes
    before = os.environ.get("TRAINMON_SOCKET_DIR")
    os.environ["TRAINMON_SOCKET_DIR"] = where
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TRAINMON_SOCKET_DIR", None)
        else:
            os.environ["TRAINMON_SOCKET_DIR"] = before
        shutil.rmtree(where, ignore_errors=True)


def _real_runs_dir() -> str:
    environ = {k: v for k, v in os.environ.items() if k != "TRAINMON_DIR"}
    return runs_dir(environ)


def _listing(path: str) -> set[str]:
    try:
        return set(os.listdir(path))
    except OSError:
        return set()


# Runs are kept (by default) in a data directory of this test session's own, set here,
# before any test module is collected (one that copies os.environ at import gets it too),
# and inherited by child processes: the suite never touches the user's real one.
_REAL_RUNS = _listing(_real_runs_dir())
_SESSION_DATA = tempfile.mkdtemp(prefix="tm-data-")
os.environ["TRAINMON_DIR"] = _SESSION_DATA
os.environ.pop("TRAINMON_RECORD", None)


@pytest.fixture(autouse=True, scope="session")
def _own_data_dir() -> Iterator[None]:
    """At the end: the session's data directory removed, and the user's real one as it
    was (a run of one's own, kept while the tests ran, fails this check too)."""
    yield
    shutil.rmtree(_SESSION_DATA, ignore_errors=True)
    added = _listing(_real_runs_dir()) - _REAL_RUNS
    if added:
        pytest.fail(f"the tests kept runs in the user's real data directory: {sorted(added)[:5]}")


@pytest.fixture(autouse=True)
def _data_dir_of_each_test(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test keeps its runs in a directory of its own: a run name one test gives
    never continues another test's run (the same name within an hour would); and the
    caller's budget or keeping switch does not change what a test sees."""
    monkeypatch.setenv("TRAINMON_DIR", str(tmp_path / "trainmon-data"))
    monkeypatch.delenv("TRAINMON_BUDGET", raising=False)
    monkeypatch.delenv("TRAINMON_RECORD", raising=False)


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    term = Tmux()
    try:
        yield term
    finally:
        term.close()


@pytest.fixture
def endpoint() -> str:
    """A free tcp endpoint on this machine."""
    return free_endpoint()


@pytest.fixture
def receiver(endpoint: str) -> Iterator[Receiver]:
    """A bound SUB socket on ``endpoint`` that decodes every record sent to it."""
    receiver = Receiver(endpoint)
    try:
        yield receiver
    finally:
        receiver.close()
