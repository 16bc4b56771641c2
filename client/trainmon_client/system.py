"""System metrics of this process, sampled by the I/O thread (never the training thread)
at most once a second: CPU and resident memory from the OS, and the GPU this process
uses through NVML where ``nvidia-ml-py`` (module ``pynvml``) is installed and a GPU is
visible; without it, no GPU metrics and no warning.

Names, all under ``sys/``:

- ``sys/cpu``: CPU time of the whole process (every thread) over the wall time since
  the last sample, in percent of one core (``ps``'s ``%cpu``, but over the last
  interval rather than the process's life);
- ``sys/rss_mb``: resident memory, MB (``/proc/self/statm``; the peak from
  ``getrusage`` where there is no ``/proc``);
- ``sys/gpu_util`` (%), ``sys/gpu_mem_mb``, ``sys/gpu_mem_total_mb``, ``sys/gpu_temp_c``,
  ``sys/gpu_power_w``: of one GPU, the one this process uses (:func:`gpu_index`).

Which GPU: the device torch is using if torch is imported already and has started CUDA
(``torch.cuda.current_device()``; torch is never imported from here), else the local
rank's (``LOCAL_RANK`` and the other launchers' local ranks), else the first; counted
among ``CUDA_VISIBLE_DEVICES`` (indices or ``GPU-`` UUIDs) where set. Eight ranks on an
eight-GPU host so report one GPU each.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import time
from typing import Any, Final

from trainmon_client.identity import identify
from trainmon_client.memguard import rss_bytes

__all__ = ["SAMPLE_EVERY_S", "SystemSampler", "gpu_index", "system_enabled"]

SAMPLE_EVERY_S: Final = 1.0
_MB: Final = 1 << 20


def system_enabled(asked: bool | None) -> bool:
    """Whether to sample: the argument where given, else ``$TRAINMON_SYSTEM`` (``0``,
    ``false``, ``no`` or ``off`` turn it off), else on."""
    if asked is not None:
        return bool(asked)
    value = os.environ.get("TRAINMON_SYSTEM", "").strip().lower()
    return value not in ("0", "false", "no", "off")


def gpu_index(environ: Any = None) -> tuple[int | None, str | None]:
    """The GPU this process uses, as NVML knows it: ``(index, None)`` or ``(None, uuid)``
    (from ``CUDA_VISIBLE_DEVICES``); ``(None, None)`` if it lists none."""
    env = os.environ if environ is None else environ
    ordinal = _torch_device()
    if ordinal is None:
        ordinal = identify(env).local_rank or 0
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return ordinal, None
    listed = [part.strip() for part in visible.split(",") if part.strip()]
    if not listed:
        return None, None
    chosen = listed[ordinal % len(listed)]
    if chosen.isdigit():
        return int(chosen), None
    return None, chosen


def _torch_device() -> int | None:
    """The CUDA device torch uses, if torch is loaded and has started CUDA already."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    with contextlib.suppress(Exception):
        if torch.cuda.is_initialized():
            return int(torch.cuda.current_device())
    return None


class _Gpu:
    """One GPU through NVML; ``read()`` gives its metrics (those NVML can tell)."""

    def __init__(self, nvml: Any, handle: Any) -> None:
        self.nvml = nvml
        self.handle = handle

    @classmethod
    def find(cls) -> _Gpu | None:
        """The GPU this process uses, or None (no pynvml, no driver, no such GPU)."""
        try:
            nvml = importlib.import_module("pynvml")
            nvml.nvmlInit()
        except Exception:  # not installed, or no driver: nothing, and no warning
            return None
        try:
            index, uuid = gpu_index()
            if uuid is not None:
                handle = nvml.nvmlDeviceGetHandleByUUID(uuid)
            elif index is not None and index < nvml.nvmlDeviceGetCount():
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
            else:
                return None
        except Exception:
            return None
        return cls(nvml, handle)

    def read(self, out: dict[str, float]) -> None:
        nvml, handle = self.nvml, self.handle
        with contextlib.suppress(Exception):
            out["sys/gpu_util"] = float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
        with contextlib.suppress(Exception):
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            out["sys/gpu_mem_mb"] = memory.used / _MB
            out["sys/gpu_mem_total_mb"] = memory.total / _MB
        with contextlib.suppress(Exception):
            out["sys/gpu_temp_c"] = float(nvml.nvmlDeviceGetTemperature(handle, 0))  # GPU
        with contextlib.suppress(Exception):
            out["sys/gpu_power_w"] = nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0


class SystemSampler:
    """Samples this process's system metrics; made and used by the I/O thread only."""

    def __init__(self) -> None:
        self.gpu = _Gpu.find()
        self._wall = time.monotonic()
        self._cpu = _cpu_seconds()
        self.next_at = self._wall + SAMPLE_EVERY_S

    def due(self, now: float) -> bool:
        """Whether a second has passed since the last sample (monotonic ``now``)."""
        return now >= self.next_at

    def sample(self) -> dict[str, float]:
        """The metrics now (CPU over the time since the last sample)."""
        wall, cpu = time.monotonic(), _cpu_seconds()
        out: dict[str, float] = {}
        if wall > self._wall:
            out["sys/cpu"] = max(cpu - self._cpu, 0.0) / (wall - self._wall) * 100.0
        self._wall, self._cpu = wall, cpu
        self.next_at = wall + SAMPLE_EVERY_S
        rss = rss_bytes()
        if rss is None:
            rss = _peak_rss()
        if rss is not None:
            out["sys/rss_mb"] = rss / _MB
        if self.gpu is not None:
            self.gpu.read(out)
        return out


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def _peak_rss() -> int | None:
    """The peak resident memory where there is no /proc (macOS), in bytes; None on Windows."""
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB; bytes on macOS
    return int(peak if sys.platform == "darwin" else peak * 1024)
