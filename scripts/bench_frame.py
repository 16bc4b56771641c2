"""Frame render time of every dashboard view, in the states that cost most.

States: no data; one point; NaN in the loss; 64 workers x 20 metrics; one worker with 50
metrics; each series holding a full window (10,000 points) plus downsampled history
where it says so. Views: the default (sparkline), the chart (c), the grid of every
metric (g), the workers band (b) and per-worker lines (b b), the help (?) and the runs
list (R). Each is rendered to an in-memory terminal of 80x24 and 200x60 with colour, the
way the live dashboard draws it, with 10 new steps from every worker arriving before
each frame (a live run); the figure is the median of 15 frames (ms).

Run: ``python scripts/bench_frame.py``. The target is under 20 ms at 200x60 with 50
metrics. With plotext installed it also times the same chart drawn by plotext. Last,
the dashboard's loop (ingest, alerts, frame) runs for 20 s with and without the
monitor's garbage-collector policy, for the pauses a full collector pass makes.
"""

from __future__ import annotations

import argparse
import io
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import replace

from trainmon.app.pacing import collector as _collector
from trainmon.state import AlertWatch, RunState
from trainmon.view import ViewOptions, render
from trainmon.view.theme import console_for
from trainmon_client.protocol import Columns, Record

NOW = 10_000.0


def build_state(workers: int, metrics: int, steps: int, nan: bool = False) -> RunState:
    state = RunState()
    for w in range(workers):
        info = {"host": f"node{w // 8}", "pid": 100 + w, "rank": w, "steps": 2 * steps}
        state.apply(Record("hello", "bench", f"w{w}", 0, NOW, info=info), NOW)
    grow(state, workers, metrics, 1, steps, nan)
    AlertWatch().check(state, NOW, 60.0)
    return state


def grow(
    state: RunState, workers: int, metrics: int, first: int, last: int, nan: bool = False
) -> None:
    """Steps ``first`` to ``last`` from every worker, in batches as the client sends."""
    names = ["loss", "accuracy", "grad_norm"] + [f"metric_{i}" for i in range(metrics - 3)]
    steps = last
    for start in range(first, last + 1, 128):
        count = min(128, steps + 1 - start)
        step_list: list[int | None] = list(range(start, start + count))
        times = [NOW - steps * 0.01 + s * 0.01 for s in range(start, start + count)]
        for w in range(workers):
            columns = {
                name: [
                    2 * math.exp(-s / 3000) + 0.1 * math.sin(s / (7 + i) + w)
                    for s in range(start, start + count)
                ]
                for i, name in enumerate(names)
            }
            if nan and start == 1:
                columns["loss"][5] = math.nan
            state.apply_columns(
                Columns("bench", f"w{w}", start, times, step_list, [0] * count, columns), NOW
            )


# name: (workers, metrics, steps, NaN)
STATES: dict[str, tuple[int, int, int, bool]] = {
    "no data": (0, 0, 0, False),
    "one point": (1, 3, 1, False),
    "NaN": (1, 5, 2_000, True),
    "64 workers x 20 metrics": (64, 20, 12_000, False),
    "50 metrics": (1, 50, 30_000, False),
}
VIEWS: dict[str, ViewOptions] = {
    "default": ViewOptions(),
    "chart": ViewOptions(chart=True),
    "grid": ViewOptions(grid=True),
    "band": ViewOptions(chart=True, workers_mode="band"),
    "lines": ViewOptions(chart=True, workers_mode="lines"),
    "zoomed": ViewOptions(chart=True, zoom=3, window=(1_000.0, 4_000.0), log_y=True),
    "help": ViewOptions(help=True),
    "runs": ViewOptions(runs_list=True),
}


class LiveFeed:
    """A live run: 10 new steps from every worker before each frame."""

    def __init__(self, state: RunState, workers: int, metrics: int, steps: int) -> None:
        self.state, self.workers, self.metrics, self.done = state, workers, metrics, steps

    def __call__(self, frame: int) -> None:
        grow(self.state, self.workers, self.metrics, self.done + 1, self.done + 10)
        self.done += 10


def frame_ms(
    state: RunState,
    opts: ViewOptions,
    width: int,
    height: int,
    feed: Callable[[int], None] | None = None,
) -> float:
    """Median ms per frame; with ``feed``, new records arrive between frames (a live run:
    ``feed(frame)`` adds them), as they do while the dashboard runs."""
    console = console_for(
        file=io.StringIO(),
        width=width,
        height=height,
        force_terminal=True,
        color_system="truecolor",
        legacy_windows=False,
    )
    times = []
    with _collector() as collector:  # as the monitor runs: no collector passes
        for frame in range(15):
            if feed is not None:
                feed(frame)
            started = time.perf_counter()
            console.print(render(state, replace(opts, address="tcp://127.0.0.1:5555"), NOW))
            times.append((time.perf_counter() - started) * 1000)
            console.file.seek(0)
            console.file.truncate()
            collector.frame()
    return statistics.median(times)


def main() -> None:
    print(__doc__.split("\n\n")[0] + "\n")
    sizes = ((80, 24), (200, 60))
    print(f"{'state':<24} {'view':<8} " + " ".join(f"{w}x{h:<3} ms" for w, h in sizes))
    for state_name, (workers, metrics, steps, nan) in STATES.items():
        state = build_state(workers, metrics, steps, nan) if workers else RunState()
        feed = LiveFeed(state, workers, metrics, steps) if workers and steps > 1 else None

        for view_name, opts in VIEWS.items():
            figures = [frame_ms(state, opts, w, h, feed) for w, h in sizes]
            print(
                f"{state_name:<24} {view_name:<8} " + " ".join(f"{f:>9.1f}" for f in figures),
                flush=True,
            )


def compare_plotext() -> None:
    """The same chart (10,000 points) drawn by plotext into Rich, when it is installed:
    the library this project would have used for charts had it been fast enough."""
    try:
        import plotext
    except ImportError:
        print("\n(plotext is not installed; `pip install plotext==5.3.2` to compare with it)")
        return
    from rich.text import Text

    from trainmon.view.chart import Line, LineChart

    xs = list(range(10_000))
    ys = [2 * math.exp(-x / 3000) + 0.1 * math.sin(x / 7) for x in xs]
    console = console_for(
        file=io.StringIO(), width=200, height=60, force_terminal=True, color_system="truecolor"
    )

    def with_plotext(width: int, height: int) -> None:
        plotext.clf()
        plotext.plotsize(width, height)
        plotext.theme("clear")
        plotext.plot(xs, ys, marker="braille")
        console.print(Text.from_ansi(plotext.build()))

    def with_trainmon(width: int, height: int) -> None:
        console.print(LineChart([Line((), steps=xs, values=ys)], height=height), width=width)

    print("\none chart of 10,000 points, median ms of 10:")
    for width, height in ((48, 10), (190, 30)):
        for name, draw in (("plotext", with_plotext), ("trainmon LineChart", with_trainmon)):
            times = []
            for _ in range(10):
                started = time.perf_counter()
                draw(width, height)
                times.append((time.perf_counter() - started) * 1000)
                console.file.seek(0)
                console.file.truncate()
            print(f"  {name:<20} {width}x{height}: {statistics.median(times):7.1f}")


def live_loop(seconds: float = 20.0) -> None:
    """The dashboard's loop in one process: 10 new steps from each of 64 workers x 20
    metrics, the alert check and a 200x60 frame, over and over; once as Python's
    collector would run, once with the monitor's policy (trainmon.app.pacing.Collector:
    what is alive is frozen out of the collector's passes after each frame). Prints
    the time per frame (alert check, drawing, the policy) and the collector's full
    passes with their duration, wherever they fell: each pauses the whole loop."""
    import gc

    print(f"\nlive loop, 64 workers x 20 metrics, 200x60, {seconds:.0f} s each:")
    for policy in ("Python's collector", "frozen after each frame"):
        state = build_state(64, 20, 12_000)
        feed = LiveFeed(state, 64, 20, 12_000)
        alerts = AlertWatch()
        console = console_for(
            file=io.StringIO(), width=200, height=60, force_terminal=True, color_system="truecolor"
        )
        opts = ViewOptions(address="tcp://127.0.0.1:5555")
        passes: list[float] = []
        began = [0.0]

        def watch(
            phase: str,
            info: dict[str, int],
            passes: list[float] = passes,
            began: list[float] = began,
        ) -> None:
            if phase == "start":
                began[0] = time.perf_counter()
            elif info["generation"] == 2:
                passes.append((time.perf_counter() - began[0]) * 1000)

        gc.collect()
        gc.callbacks.append(watch)
        times = []
        with _collector() as collector:
            started = time.perf_counter()
            while time.perf_counter() - started < seconds:
                feed(0)  # (all workers at once: their windows spill together, not timed)
                tick = time.perf_counter()
                alerts.check(state, NOW, 60.0)
                console.print(render(state, opts, NOW))
                console.file.seek(0)
                console.file.truncate()
                if policy != "Python's collector":
                    collector.frame()
                times.append((time.perf_counter() - tick) * 1000)
        gc.callbacks.remove(watch)
        times.sort()
        print(
            f"  {policy:<24} {len(times):>4} frames: median {statistics.median(times):5.1f} ms, "
            f"99th {times[int(len(times) * 0.99)]:6.1f} ms, longest {times[-1]:6.1f} ms; "
            f"{len(passes)} full collector passes"
            + (f" of {min(passes):.0f}-{max(passes):.0f} ms" if passes else "")
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--no-live", action="store_true", help="leave out the 40 s of the dashboard's loop"
    )
    args = parser.parse_args()
    main()
    compare_plotext()
    if not args.no_live:
        live_loop()
