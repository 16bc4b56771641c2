"""What the system metrics cost the I/O thread once a second: a sample (CPU and memory
from the OS; with a GPU through NVML, here a stand-in that answers at once, so only
the Python around the calls) and the encoding of its record.

    .venv/bin/python scripts/bench_system.py [--samples 20000]
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from trainmon_client import system
from trainmon_client.protocol import columns_wire, pack_payload


def _per_call_us(call: Callable[[], object], n: int) -> tuple[float, float]:
    """Median and 99th percentile of one call, microseconds (after n/10 to warm up)."""
    for _ in range(n // 10):
        call()
    times = []
    for _ in range(n):
        started = time.perf_counter_ns()
        call()
        times.append(time.perf_counter_ns() - started)
    times.sort()
    return statistics.median(times) / 1000, times[int(0.99 * (n - 1))] / 1000


def _row(sampler: system.SystemSampler) -> bytes:
    values = sampler.sample()
    wire = columns_wire("run", "host:1", 1, [time.time()], [0], [None],
                        {k: [v] for k, v in values.items()})
    return pack_payload([wire])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=20_000)
    n = parser.parse_args().samples
    sampler = system.SystemSampler()
    print(f"{'what':<38}{'median us':>10}{'p99 us':>10}")
    for label, fn in (
        ("CPU + RSS sample", sampler.sample),
        ("CPU + RSS sample, encoded", lambda: _row(sampler)),
    ):
        med, p99 = _per_call_us(fn, n)
        print(f"{label:<38}{med:>10.1f}{p99:>10.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        stand_in = Path(tmp) / "pynvml.py"
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from tests.test_system import _STAND_IN_NVML

        stand_in.write_text(textwrap.dedent(_STAND_IN_NVML))
        sys.path.insert(0, tmp)
        importlib.invalidate_caches()
        gpu = system.SystemSampler()
        assert gpu.gpu is not None
        med, p99 = _per_call_us(lambda: _row(gpu), n)
        print(f"{'+ GPU (stand-in NVML), encoded':<38}{med:>10.1f}{p99:>10.1f}")


if __name__ == "__main__":
    main()
