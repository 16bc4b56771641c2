"""The workers table's system columns in a real terminal (tmux): two ranks with a
stand-in NVML each report their own GPU, CPU and memory; the stats panel lists no
``sys/*`` metric."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from tests.helpers import Tmux, command, free_endpoint, start_publisher, stop
from tests.test_system import _STAND_IN_NVML

pytestmark = pytest.mark.tmux


def test_workers_table_shows_gpu_cpu_and_memory(tmp_path: Path) -> None:
    (tmp_path / "pynvml.py").write_text(textwrap.dedent(_STAND_IN_NVML))
    tmux = Tmux(width=140, height=45)
    pubs = []
    try:
        endpoint = free_endpoint()
        tmux.type(command("watch", "--bind", endpoint))
        tmux.wait_text(f"Waiting for records on {endpoint}")
        pubs = [
            start_publisher(
                endpoint,
                count=4000,
                delay_s=0.005,
                env={
                    "RANK": str(rank),
                    "WORLD_SIZE": "2",
                    "LOCAL_RANK": str(rank),
                    "CUDA_VISIBLE_DEVICES": "0,1",
                    "PYTHONPATH": str(tmp_path),
                    "TRAINMON_SYSTEM": "1",
                },
            )
            for rank in range(2)
        ]
        screen = tmux.wait_screen(lambda s: "1.0G/16G" in s and "2.0G/16G" in s, 30.0)
        for text in ("GPU %", "GPU mem", "CPU %", "RSS"):
            assert text in screen, text
        assert "sys/" not in screen  # not in the stats panel
        # rank 0 has GPU 0 (7% busy, 1 GiB used), rank 1 GPU 1 (17%, 2 GiB)
        assert re.search(r"^\W*0 .* 7 +1\.0G/16G +\d+ +\d+(\.\d)?[MG] ", screen, re.M), screen
        assert re.search(r"^\W*1 .* 17 +2\.0G/16G +\d+ +\d+(\.\d)?[MG] ", screen, re.M), screen
        tmux.keys("q")
    finally:
        for pub in pubs:
            stop(pub)
        tmux.close()
