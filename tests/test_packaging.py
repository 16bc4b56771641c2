"""The client is its own distribution: pyzmq and msgpack, nothing else."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT


def test_client_installs_alone(tmp_path: Path) -> None:
    """In an empty venv, `pip install ./client` brings only pyzmq and msgpack."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", str(ROOT / "client")],
        check=True,
        timeout=300,
    )
    listed = subprocess.run(
        [python, "-m", "pip", "list", "--format=freeze", "--disable-pip-version-check"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    names = {line.split("==")[0].lower() for line in listed.split()}
    assert names - {"pip", "setuptools", "wheel"} == {"trainmon-client", "pyzmq", "msgpack"}
    probe = (
        "import sys, trainmon_client; trainmon_client.Monitor; "
        "print(sorted(m for m in ('rich', 'click', 'trainmon') if m in sys.modules))"
    )
    out = subprocess.run(
        [python, "-c", probe], check=True, capture_output=True, text=True, cwd=tmp_path
    ).stdout
    assert out.strip() == "[]"
