"""The record seam: records from files are replayed and exported without ZeroMQ."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "module", ["trainmon.sources", "trainmon.sources.recording", "trainmon.sources.export"]
)
def test_files_need_no_sockets(module: str) -> None:
    """The seam, recordings and exports load no ZeroMQ (nor the command line)."""
    code = f"import sys, {module}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = {name.split(".")[0] for name in out.stdout.split()}
    assert not loaded & {"zmq", "click"}


@pytest.mark.parametrize(
    "module",
    [
        "trainmon.sources",
        "trainmon.sources.endpoints",
        "trainmon.sources.export",
        "trainmon.sources.links",
        "trainmon.sources.recording",
        "trainmon.sources.relay",
        "trainmon.sources.subscriber",
    ],
)
def test_public_surface_is_a_sorted_list(module: str) -> None:
    """__all__ is sorted and names things that exist."""
    mod = importlib.import_module(module)
    assert mod.__all__ == sorted(mod.__all__)
    assert all(hasattr(mod, name) for name in mod.__all__)
