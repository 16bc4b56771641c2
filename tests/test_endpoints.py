"""The private default endpoint: a 0700 directory of the user's own, or loopback tcp."""

from __future__ import annotations

import os
import socket
import types
from pathlib import Path

import pytest
import zmq

from trainmon_client.endpoints import (
    LEGACY_ENDPOINT,
    default_endpoint,
    ipc_in_use,
    ipc_path,
    private_dir,
)

pytestmark = pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX users and modes")


@pytest.fixture
def sockets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    where = tmp_path / "s"
    monkeypatch.setenv("TRAINMON_SOCKET_DIR", str(where))
    return where


def test_default_is_ipc_in_a_private_directory(sockets: Path) -> None:
    """The default endpoint is a socket in a directory made 0700 for this user."""
    default = default_endpoint()
    assert default.endpoint == f"ipc://{sockets}/monitor" and default.note == ""
    info = sockets.stat()
    assert oct(info.st_mode & 0o777) == "0o700" and info.st_uid == os.getuid()


def test_open_directory_of_ours_is_closed(sockets: Path) -> None:
    """A directory of ours that others could enter is made private again."""
    sockets.mkdir(mode=0o755)
    sockets.chmod(0o777)
    assert private_dir() == (str(sockets), "")
    assert sockets.stat().st_mode & 0o777 == 0o700


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a directory away")
def test_directory_of_another_user_is_not_used(sockets: Path) -> None:
    """A directory someone else made under the name is refused: loopback tcp, said why."""
    sockets.mkdir(mode=0o700)
    os.chown(sockets, 65534, 65534)
    default = default_endpoint()
    assert default.endpoint == LEGACY_ENDPOINT
    assert "belongs to another user" in default.note


def test_a_link_is_not_used(sockets: Path, tmp_path: Path) -> None:
    """A symbolic link in the directory's place is refused (it could lead anywhere)."""
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    sockets.symlink_to(tmp_path / "elsewhere")
    assert default_endpoint().endpoint == LEGACY_ENDPOINT


def test_too_long_a_path_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """A directory whose socket path would not fit a local socket falls back to tcp."""
    monkeypatch.setenv("TRAINMON_SOCKET_DIR", "/tmp/" + "x" * 120)
    default = default_endpoint()
    assert default.endpoint == LEGACY_ENDPOINT and "too long" in default.note


def test_in_use_probe(sockets: Path) -> None:
    """A socket someone listens on is in use; a file left by a dead process is not."""
    endpoint = default_endpoint().endpoint
    path = ipc_path(endpoint)
    assert path is not None and not ipc_in_use(path)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.SUB)
    try:
        sock.bind(endpoint)
        assert ipc_in_use(path)
    finally:
        sock.close(0)
        ctx.term()
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(sockets / "stale"))
    stale.close()  # the file stays, nobody listens
    assert not ipc_in_use(str(sockets / "stale"))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a directory away")
def test_a_squatted_tmp_directory_moves_to_the_home_not_to_tcp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another user who makes /tmp/trainmon-UID first cannot push this user onto a port
    everyone can reach: the socket goes to a private directory in the home, said."""
    import pwd

    from trainmon_client import endpoints

    monkeypatch.delenv("TRAINMON_SOCKET_DIR", raising=False)
    monkeypatch.setattr(endpoints, "_TMP", str(tmp_path))  # not the machine's real /tmp
    squatted = tmp_path / f"trainmon-{os.getuid()}"
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setattr(pwd, "getpwuid", lambda uid: types.SimpleNamespace(pw_dir=str(home)))
    squatted.mkdir(mode=0o700)
    os.chown(squatted, 65534, 65534)
    default = default_endpoint()
    assert default.endpoint.startswith(f"ipc://{home}/.trainmon/sockets-")
    assert "belongs to another user" in default.note and "using" in default.note
    assert (home / ".trainmon").stat().st_mode & 0o077 == 0


def test_a_relative_socket_dir_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A relative $TRAINMON_SOCKET_DIR would mean another place in each directory."""
    monkeypatch.setenv("TRAINMON_SOCKET_DIR", "rel")
    default = default_endpoint()
    assert default.endpoint == LEGACY_ENDPOINT and "absolute" in default.note
