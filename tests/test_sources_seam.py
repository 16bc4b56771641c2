"""The record seam: records from files are replayed and exported without ZeroMQ."""

from __future__ import annotations

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
