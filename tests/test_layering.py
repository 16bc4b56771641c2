"""Imports point one way, and each package's public surface is its sorted __all__."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest


def _modules_after_import(module: str) -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        ("trainmon_client", {"rich", "click", "trainmon"}),
        ("trainmon.state", {"zmq", "click", "rich"}),
        ("trainmon.view", {"zmq", "click"}),
        ("trainmon.view.sparkline", {"zmq", "click"}),
    ],
)
def test_imports_point_one_way(module: str, forbidden: set[str]) -> None:
    """The client needs no monitor parts; state and view need no sockets or CLI."""
    loaded = {name.split(".")[0] for name in _modules_after_import(module)}
    assert not loaded & forbidden


@pytest.mark.parametrize(
    "module",
    [
        "trainmon_client",
        "trainmon_client.protocol",
        "trainmon.state",
        "trainmon.view",
        "trainmon.sources",
        "trainmon.app",
        "trainmon.app.live",
        "trainmon.app.pacing",
        "trainmon.keys",
        "trainmon.cli",
        "trainmon.controls.reducer",
        "trainmon.controls.terminal",
    ],
)
def test_public_surface_is_a_sorted_list(module: str) -> None:
    """__all__ is sorted and names things that exist."""
    mod = importlib.import_module(module)
    names = mod.__all__
    assert names == sorted(names)
    assert all(hasattr(mod, name) for name in names)


def test_client_api() -> None:
    """The client's public names are exactly these."""
    import trainmon_client

    assert trainmon_client.__all__ == [
        "DEFAULT_ENDPOINT",
        "Monitor",
        "PROTOCOL_VERSION",
        "ProtocolError",
        "Record",
        "__version__",
        "decode",
        "encode",
    ]
