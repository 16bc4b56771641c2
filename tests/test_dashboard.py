"""Every dashboard view in every state, at 80x24 and 200x60; the keys that change the
view; themes; alerts; throughput and stragglers. Rendered to a StringIO console."""

from __future__ import annotations

import io
import math
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from rich.console import RenderableType

from trainmon.app import frame_interval
from trainmon.controls.reducer import next_options
from trainmon.keys import Action, parse_keys
from trainmon.state import SPIKE_FACTOR, WARMUP_RECORDS, AlertWatch, Limits, RunState
from trainmon.view import ViewOptions, render
from trainmon.view.cache import run_cache
from trainmon.view.theme import ThemeError, console_for, load_theme
from trainmon_client.protocol import Columns, Record

NOW = 10_000.0
SIZES = ((80, 24), (200, 60))


def build(
    workers: int = 1,
    metrics: int = 3,
    steps: int = 500,
    run: str = "r",
    nan_at: int | None = None,
    rate_of: dict[int, float] | None = None,
    extra: dict[str, float] | None = None,
    state: RunState | None = None,
) -> RunState:
    """A run of ``workers`` ranks logging ``metrics`` metrics for ``steps`` steps, the
    last record at NOW; worker w does ``rate_of[w]`` steps/s (100 unless given)."""
    state = state or RunState()
    names = ["loss", "accuracy", "grad_norm"][:metrics] + [
        f"metric_{i}" for i in range(metrics - 3)
    ]
    for w in range(workers):
        rate = (rate_of or {}).get(w, 100.0)
        done = int(steps * rate / 100)
        info = {"host": f"node{w // 8}", "pid": 100 + w, "rank": w, "steps": 2 * steps}
        state.apply(Record("hello", run, f"{run}-w{w}", 0, NOW - 60, info=info), NOW - 60)
        for start in range(1, done + 1, 128):
            count = min(128, done + 1 - start)
            step_list: list[int | None] = list(range(start, start + count))
            times = [NOW - (done - s) / rate for s in range(start, start + count)]
            columns = {
                name: [
                    2 * math.exp(-s / 200) + 0.01 * math.sin(s + i)
                    for s in range(start, start + count)
                ]
                for i, name in enumerate(names)
            }
            for name, value in (extra or {}).items():
                columns[name] = [value] * count
            if nan_at is not None and start <= nan_at < start + count:
                columns["loss"][nan_at - start] = math.nan
            state.apply_columns(
                Columns(run, f"{run}-w{w}", start, times, step_list, [0] * count, columns),
                times[-1],
            )
    return state


def draw(
    state: RunState,
    opts: ViewOptions | None = None,
    width: int = 80,
    height: int = 24,
    **kw: object,
) -> str:
    console = console_for(
        file=io.StringIO(), width=width, height=height, color_system=None, legacy_windows=False
    )
    opts = opts or ViewOptions(address="tcp://127.0.0.1:5555")
    renderable: RenderableType = render(state, replace(opts, **kw) if kw else opts, NOW)  # type: ignore[arg-type]
    console.print(renderable)
    return str(console.file.getvalue())  # type: ignore[attr-defined]


STATES = {
    "no data": lambda: RunState(),
    "one point": lambda: build(steps=1),
    "NaN": lambda: build(steps=300, nan_at=150),
    "64 workers": lambda: build(workers=64, metrics=20, steps=300),
    "50 metrics": lambda: build(metrics=50, steps=300),
}
VIEWS = {
    "default": {},
    "chart": {"chart": True},
    "grid": {"grid": True},
    "band": {"chart": True, "workers_mode": "band"},
    "lines": {"chart": True, "workers_mode": "lines"},
    "zoomed": {"chart": True, "zoom": 2, "window": (50.0, 120.0), "log_y": True, "robust": True},
    "help": {"help": True},
    "runs": {"runs_list": True},
    "paused": {"paused": True, "paused_records": 7},
}


@pytest.fixture(scope="module")
def states() -> dict[str, RunState]:
    built = {name: make() for name, make in STATES.items()}
    for state in built.values():
        AlertWatch().check(state, NOW, 60.0)
    return built


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("view", VIEWS)
@pytest.mark.parametrize("state_name", STATES)
def test_every_view_fits_every_state(
    states: dict[str, RunState], state_name: str, view: str, size: tuple[int, int]
) -> None:
    """Each view draws in each state, filling the terminal and nothing more."""
    width, height = size
    out = draw(states[state_name], width=width, height=height, **VIEWS[view])
    lines = out.split("\n")[:-1]
    assert len(lines) == height, f"{len(lines)} lines"
    assert max(len(line) for line in lines) <= width
    if state_name == "no data":
        assert "Waiting for records" in out or "Keys" in out
        return
    expected = {
        "help": ["Keys", "zoom", "log-scale y axis", "follow the live tail"],
        "runs": ["Runs (1)", "▶"],
        "paused": ["PAUSED", "7 records arrived since"],
        "zoomed": ["zoom ×4"] if state_name != "one point" else [],
        "grid": ["metrics 1–"] if state_name != "one point" else [],
    }.get(view, [])
    for text in expected:
        assert text in out, text
    if state_name == "NaN" and view in ("default", "chart", "grid", "zoomed"):
        assert "NaN/Inf in loss" in out  # the alert line
    if state_name == "64 workers" and view == "band":
        assert "mean of 64 workers" in out
    if state_name == "64 workers" and view == "lines" and height > 30:
        assert "8 workers (first 8)" in out


def test_chart_marks_nan_and_grid_pages_through_metrics(states: dict[str, RunState]) -> None:
    out = draw(states["NaN"], chart=True, width=120, height=40)
    assert "×" in out, "the NaN is marked on the chart"
    first = draw(states["50 metrics"], grid=True, width=200, height=60)
    match = re.search(r"metrics 1–(\d+) of 49 · page 1/(\d+)", first)
    assert match, first
    per_page, pages = int(match.group(1)), int(match.group(2))
    assert per_page * pages >= 49 and per_page * (pages - 1) < 49
    second = draw(states["50 metrics"], grid=True, page=1, width=200, height=60)
    assert f"metrics {per_page + 1}–" in second and "page 2/" in second
    wrapped = draw(states["50 metrics"], grid=True, page=pages, width=200, height=60)
    assert "page 1/" in wrapped  # past the last page comes the first again


def test_grid_at_80x24_still_shows_charts(states: dict[str, RunState]) -> None:
    out = draw(states["50 metrics"], grid=True)
    assert "metrics 1–" in out and "┤" in out


# -- keys ---------------------------------------------------------------------------


def test_keys_and_escape_sequences() -> None:
    assert parse_keys("?g][+-hlfyi") == [
        Action.HELP,
        Action.GRID,
        Action.NEXT_PAGE,
        Action.PREV_PAGE,
        Action.ZOOM_IN,
        Action.ZOOM_OUT,
        Action.PAN_LEFT,
        Action.PAN_RIGHT,
        Action.FOLLOW,
        Action.TOGGLE_LOG,
        Action.TOGGLE_ROBUST,
    ]
    assert parse_keys("\x1b[D\x1b[C\x1b[5~\x1b[6~\x1b[F\x1b[A") == [
        Action.PAN_LEFT,
        Action.PAN_RIGHT,
        Action.PREV_PAGE,
        Action.NEXT_PAGE,
        Action.FOLLOW,
    ]  # the up arrow means nothing and is skipped whole
    assert parse_keys("\x1b") == [Action.CLOSE]
    assert parse_keys("mMwbrRo") == [
        Action.NEXT_METRIC,
        Action.PREV_METRIC,
        Action.NEXT_WORKER,
        Action.WORKERS_MODE,
        Action.NEXT_RUN,
        Action.RUNS_LIST,
        Action.OVERLAY,
    ]


def test_zoom_and_pan_stay_within_the_run() -> None:
    state = build(steps=1000)  # steps 1 to 1,000
    opts = next_options(ViewOptions(), Action.PAN_LEFT, state)
    assert opts.chart and opts.window is None, "nothing to pan at full zoom"
    for _ in range(2):
        opts = next_options(opts, Action.ZOOM_IN, state)
    assert opts.zoom == 2 and opts.window is None
    out = draw(state, opts, width=120, height=40)
    assert "zoom ×4 · following" in out and re.search(r"└750\s+1,000 ", out)
    opts = next_options(opts, Action.PAN_LEFT, state)
    assert opts.window == pytest.approx((625.375, 875.125))  # half a window back
    # the window stays where it was panned to while the run goes on
    grown = build(steps=1200)
    assert "└625" in draw(grown, opts, width=120, height=40)
    for _ in range(20):
        opts = next_options(opts, Action.PAN_LEFT, state)
    assert opts.window == pytest.approx((1.0, 250.75)), "stops at the first step"
    out = draw(state, opts, width=120, height=40)
    assert re.search(r"└1\s+250 ", out) and "749 steps back" in out
    opts = next_options(opts, Action.ZOOM_OUT, state)
    assert opts.zoom == 1 and opts.window == pytest.approx((1.0, 500.5))
    opts = next_options(opts, Action.ZOOM_IN, state)
    assert opts.zoom == 2 and opts.window == pytest.approx((125.875, 375.625))
    opts = next_options(opts, Action.FOLLOW, state)
    assert opts.window is None
    for _ in range(2):  # panning back to the live end follows it again
        opts = next_options(opts, Action.PAN_LEFT, state)
    opts = next_options(next_options(opts, Action.PAN_RIGHT, state), Action.PAN_RIGHT, state)
    assert opts.window is None
    assert "following" in draw(state, opts, width=120, height=40)


def test_metric_worker_run_and_overlay_choice() -> None:
    state = build(workers=3, metrics=4, steps=200, run="a")
    build(workers=1, metrics=4, steps=100, run="b", state=state)
    opts = ViewOptions(run="a", chart=True)
    opts = next_options(opts, Action.NEXT_METRIC, state)
    assert opts.metric == "accuracy"
    assert "accuracy · 200 steps" in draw(state, opts, width=120, height=40)
    opts = next_options(opts, Action.PREV_METRIC, state)
    opts = next_options(opts, Action.PREV_METRIC, state)
    assert opts.metric == "metric_0"  # wraps around
    opts = next_options(opts, Action.NEXT_WORKER, state)
    assert opts.worker == "a-w1"
    assert "rank 1" in draw(state, opts, width=120, height=40)
    opts = next_options(opts, Action.OVERLAY, state)
    assert opts.overlay == "b"
    assert "vs b" in draw(state, opts, width=120, height=40)
    opts = next_options(opts, Action.OVERLAY, state)
    assert opts.overlay is None
    opts = next_options(opts, Action.NEXT_RUN, state)
    assert opts.run == "b" and opts.worker is None
    opts = next_options(opts, Action.RUNS_LIST, state)
    out = draw(state, opts, width=120, height=40)
    assert "Runs (2)" in out and re.search(r"▶\s+b", out)
    assert next_options(opts, Action.CLOSE, state).runs_list is False


def test_workers_mode_cycles() -> None:
    state = build(workers=3, steps=100)
    modes = []
    opts = ViewOptions()
    for _ in range(3):
        opts = next_options(opts, Action.WORKERS_MODE, state)
        modes.append(opts.workers_mode)
    assert modes == ["band", "lines", "one"]


# -- numbers ------------------------------------------------------------------------


def test_samples_and_tokens_per_second_and_step_time() -> None:
    state = build(workers=2, steps=400, extra={"batch_size": 32.0, "tokens": 4096.0})
    out = draw(state, width=200, height=60)
    # two data-parallel ranks at 100 steps/s, each with its own batch of 32
    assert "100.0 steps/s  6.4k samples/s  819.2k tokens/s" in out
    assert re.search(r"100\.0\s+10\.0\s+0\s+running", out), "steps/s, step ms, missed"


def test_rate_leaves_out_the_warm_up() -> None:
    """A slow first step (compiling) does not drag the rate or the ETA."""
    state = RunState()
    state.apply(Record("hello", "r", "w", 0, 0.0, info={"steps": 1000}), 0.0)
    t = 30.0  # step 0 took 30 s
    for step in range(40):
        t += 0.1 if step else 0.0
        state.apply(Record("metrics", "r", "w", step + 1, t, step=step, metrics={"loss": 1.0}), t)
    worker = state.runs["r"].workers["w"]
    assert worker.steps_per_s == pytest.approx(10.0)
    assert WARMUP_RECORDS >= 1


def test_straggler_is_flagged() -> None:
    state = build(workers=4, steps=400, rate_of={2: 50.0})
    run = state.runs["r"]
    straggler = run.straggler(NOW, 60.0)
    assert straggler is not None and straggler.rank == 2
    out = draw(state, width=200, height=60)
    assert "straggler" in out
    narrow = draw(state, width=80, height=30)  # the workers table's row says it in full
    row = next(line for line in narrow.splitlines() if line.startswith("│     2 "))
    assert row.rstrip(" │").endswith("straggler"), row
    assert build(workers=4, steps=400).runs["r"].straggler(NOW, 60.0) is None


def test_spike_factor_must_be_positive() -> None:
    with pytest.raises(ValueError, match="spike_factor"):
        AlertWatch(spike_factor=0.0)


def test_frames_slow_down_while_ingest_is_heavy() -> None:
    assert frame_interval(0.1, backlog=False, busy_share=0.2) == 0.1
    assert frame_interval(0.1, backlog=True, busy_share=0.2) == 0.25
    assert frame_interval(0.1, backlog=False, busy_share=0.8) == 0.25
    assert frame_interval(1.0, backlog=True, busy_share=0.8) == 1.0, "never faster than asked"
    # a slow frame under a flood (cores taken): drawing gets a tenth of the time, up to 1 s
    assert frame_interval(0.1, backlog=True, busy_share=0.9, frame_s=0.06) == pytest.approx(0.6)
    assert frame_interval(0.1, backlog=True, busy_share=0.9, frame_s=0.5) == 1.0
    assert frame_interval(0.1, backlog=False, busy_share=0.1, frame_s=0.06) == 0.1, "no flood"


@pytest.mark.parametrize(
    "opts",
    [
        ViewOptions(),
        ViewOptions(grid=True),
        ViewOptions(chart=True, metric="x[/]"),
        ViewOptions(metric="x[/]"),
        ViewOptions(chart=True, metric="[bold red]y"),
        ViewOptions(runs_list=True),
        ViewOptions(help=True),
    ],
)
def test_names_are_shown_as_sent_never_read_as_markup(opts: ViewOptions) -> None:
    """Names come from the wire: a metric named ``x[/]`` once crashed the grid (Rich took
    it for a closing tag) and ``[bold red]y`` lost its brackets. Every view shows them
    as they are, an alert about them too."""
    state = RunState()
    state.apply(Record("hello", "r[/]", "w", 0, NOW - 30, info={"rank": 0}), NOW - 30)
    for i in range(1, 30):
        values = {"loss": 1.0 / i, "x[/]": float(i), "[bold red]y": math.nan if i == 9 else 2.0}
        state.apply(
            Record("metrics", "r[/]", "w", i, NOW - 30 + i, step=i, metrics=values), NOW - 30 + i
        )
    AlertWatch().check(state, NOW, 60.0)
    out = draw(state, opts, width=100, height=30)
    assert "r[/]" in out
    if opts.grid or opts.metric:
        assert "x[/]" in out and "[bold red]y" in out


def test_long_panel_titles_end_with_an_ellipsis() -> None:
    state = build(workers=4, steps=400)
    opts = ViewOptions(chart=True, workers_mode="band", log_y=True, zoom=2)
    title = next(line for line in draw(state, opts).splitlines() if "steps · zoom" in line)
    assert "…" in title.split("╮")[0], title


# -- alerts -------------------------------------------------------------------------


def test_alerts_nan_spike_stall_missed_client_once_each() -> None:
    state = RunState()
    watch = AlertWatch()
    state.apply(Record("hello", "r", "w", 0, 0.0, info={"rank": 0}), 0.0)
    seq = 1
    for step in range(100):
        loss = 1.0 - step * 0.005 + 0.01 * math.sin(step)
        state.apply(Record("metrics", "r", "w", seq, step, step=step, metrics={"loss": loss}), 1.0)
        seq += 1
    assert watch.check(state, 1.0, 60.0) == [], "a smooth decrease raises nothing"
    state.apply(Record("metrics", "r", "w", seq, 100, step=100, metrics={"loss": 9.0}), 2.0)
    seq += 1
    new = watch.check(state, 2.0, 60.0)
    assert [a.kind for a in new] == ["spike"] and "step 100" in new[0].text
    state.apply(Record("metrics", "r", "w", seq, 101, step=101, metrics={"loss": math.nan}), 3.0)
    seq += 2  # and one record lost on the way
    state.apply(Record("metrics", "r", "w", seq, 102, step=102, metrics={"loss": 0.5}), 3.0)
    state.apply(Record("alert", "r", "w", seq + 1, 103, info={"title": "val up", "text": "x"}), 3.0)
    kinds = sorted(a.kind for a in watch.check(state, 3.0, 60.0))
    assert kinds == ["client", "missed", "nan"]
    assert watch.check(state, 3.5, 60.0) == [], "each alert is raised once"
    assert [a.kind for a in watch.check(state, 70.0, 60.0)] == ["lost"]
    out = draw(state, width=120, height=40)
    assert "5 alerts" in out and "rank 0 lost" in out


def _spike_steps_by_definition(steps: list[int], values: list[float]) -> list[int]:
    """Steps of spikes as the docs define them, one value at a time: a finite value
    more than SPIKE_FACTOR mean deviations above the EMA (weight 0.9) of the values
    before it and at least three times it, once 20 finite values have been seen."""
    found, smooth, deviation, seen = [], math.nan, 0.0, 0
    for step, value in zip(steps, values, strict=True):
        if not math.isfinite(value):
            continue
        jump = value - smooth
        big = jump > SPIKE_FACTOR * deviation and jump > 2.0 * abs(smooth)
        if seen >= 20 and deviation > 0 and big:
            found.append(step)
        if seen == 0:
            smooth = value
        else:
            deviation = 0.9 * deviation + 0.1 * abs(value - smooth)
            smooth = 0.9 * smooth + 0.1 * value
        seen += 1
    return found


@st.composite
def _losses(draw: st.DrawFn) -> list[float]:
    """Noise around 1 with a few jumps of any height (many near the thresholds) and
    some NaN/Inf."""
    phase = draw(st.floats(0.0, 6.0))
    values = [1.0 + 0.03 * math.sin(1.7 * i + phase) for i in range(draw(st.integers(1, 300)))]
    for _ in range(draw(st.integers(0, 6))):
        index = draw(st.integers(0, min(len(values) - 1, draw(st.sampled_from([25, 300])))))
        values[index] = draw(
            st.one_of(
                st.floats(2.97, 3.03),  # about three times the smoothed value: the threshold
                st.floats(1.2, 6.0),
                st.sampled_from([math.nan, math.inf, -math.inf]),
            )
        )
    return values


@settings(max_examples=300, deadline=None)
@given(_losses(), st.lists(st.integers(1, 120), min_size=1, max_size=10))
def test_spikes_are_found_as_defined_whatever_the_frames(
    values: list[float], pieces: list[int]
) -> None:
    """The fast detector, run once per frame on whatever came since, finds exactly the
    spikes of the one-value-at-a-time definition."""
    state, watch = RunState(), AlertWatch()
    found: list[int] = []
    start, frame = 0, 0
    while start < len(values):
        count = pieces[frame % len(pieces)]
        chunk = values[start : start + count]
        steps = list(range(start, start + len(chunk)))
        state.apply_columns(
            Columns(
                "r", "w", start, [float(s) for s in steps], steps, [0] * len(chunk), {"loss": chunk}
            ),
            1.0,
        )
        for alert in watch.check(state, 1.0, 60.0):
            if alert.kind == "spike":
                found.append(int(re.search(r"step ([\d,]+)", alert.text)[1].replace(",", "")))
        start, frame = start + len(chunk), frame + 1
    assert found == _spike_steps_by_definition(list(range(len(values))), values)


# -- themes -------------------------------------------------------------------------


def _colours(state: RunState, theme: str, **kwargs: object) -> str:
    console = console_for(
        load_theme(theme),
        file=io.StringIO(),
        width=120,
        height=40,
        force_terminal=True,
        color_system="truecolor",
        **kwargs,
    )
    console.print(render(state, ViewOptions(chart=True), NOW))
    return str(console.file.getvalue())  # type: ignore[attr-defined]


def test_themes_colour_and_mono(monkeypatch: pytest.MonkeyPatch) -> None:
    state = build(workers=2, steps=200, nan_at=100)
    AlertWatch().check(state, NOW, 60.0)
    dark, light, mono = (_colours(state, t) for t in ("dark", "light", "mono"))
    colour = re.compile(r"\x1b\[[0-9;]*(?:3[0-9]|4[0-9]|9[0-7]|10[0-7])[;m]")
    assert colour.search(dark) and colour.search(light)
    assert dark != light
    assert not colour.search(mono), "mono uses no colour"
    assert "\x1b[1m" in mono or "\x1b[1;" in mono, "mono still marks with bold"
    monkeypatch.setenv("NO_COLOR", "1")
    assert not colour.search(_colours(state, "dark"))


def test_theme_file(tmp_path: Path) -> None:
    path = tmp_path / "theme.toml"
    path.write_text('base = "light"\nline = "bright_green"\n')
    theme = load_theme("dark", path)
    assert str(theme.styles["tm.line"]) == "bright_green"
    assert str(theme.styles["tm.good"]) == "dark_green"  # from the light base
    for text, message in (
        ("nope = 'red'", "unknown style 'nope'"),
        ("line = 3", "must be a string"),
        ("line = 'not a colour at all'", "line"),
        ("line = ", "not TOML"),
        ("base = 'neon'", "base must be"),
    ):
        path.write_text(text)
        with pytest.raises(ThemeError, match=message):
            load_theme("dark", path)
    with pytest.raises(ThemeError, match="cannot read"):
        load_theme("dark", tmp_path / "missing.toml")
    with pytest.raises(ThemeError, match="unknown theme"):
        load_theme("neon")


def test_grid_cells_follow_a_live_run_a_few_at_a_time() -> None:
    """Small charts whose series changed are redrawn at most a few per frame, the
    longest-waiting first, so every one catches up within a few frames."""
    state = build(metrics=12, steps=300)
    opts = ViewOptions(grid=True)
    first = draw(state, opts, width=200, height=60)
    assert re.search(r"accuracy \d+\.\d+%", first)
    # every metric moves on to a value that shows in each cell's title
    for step in range(301, 311):
        state.apply(
            Record(
                "metrics",
                "r",
                "r-w0",
                step,
                NOW,
                step=step,
                metrics={n: 7.25 for n in state.runs["r"].metric_names},
            ),
            NOW,
        )
    # a cell's title: its metric and last value (accuracy as a percentage)
    titles = re.compile(r"─ \w+ 7\.250?%? ─")
    shown = [len(titles.findall(draw(state, opts, width=200, height=60))) for _ in range(8)]
    cells = 11  # every metric but the main one (loss)
    assert shown[0] == 2, "two cells redrawn in a frame"
    assert shown == sorted(shown), "cells catch up, never go back"
    assert shown[-1] >= cells, shown


def test_band_follows_new_data_within_a_few_frames() -> None:
    """The across-workers band is kept between frames but catches up with new data."""
    state = build(workers=3, steps=300)
    opts = ViewOptions(chart=True, workers_mode="band")
    assert "40.0 ┤" not in draw(state, opts, width=120, height=40)
    state.apply(Record("metrics", "r", "r-w1", 400, NOW, step=310, metrics={"loss": 40.0}), NOW)
    frames = [draw(state, opts, width=120, height=40) for _ in range(6)]
    assert any("40.0 ┤" in frame for frame in frames), "the spike shows within 5 frames"
    assert "40.0 ┤" in frames[-1]


def test_summary_names_workers_lost_without_a_bye() -> None:
    """A worker that vanished may have sent records nobody counted: the summary says so."""
    from trainmon.report import summary

    state = build(workers=3, steps=50)
    state.apply(Record("bye", "r", "r-w0", 51, NOW), NOW)
    text = summary(state, ViewOptions(), NOW + 30)
    assert "2 workers lost without a bye (rank 1, rank 2)" in text
    assert "lost without" not in summary(state, ViewOptions(), NOW + 1)


def test_keys_that_cannot_act_say_why() -> None:
    state = build(steps=50)
    opts = ViewOptions()
    assert "only one run" in next_options(opts, Action.NEXT_RUN, state).notice
    assert "only one run" in next_options(opts, Action.OVERLAY, state).notice
    assert "only one worker" in next_options(opts, Action.NEXT_WORKER, state).notice
    grid = ViewOptions(grid=True)
    assert "g leaves it" in next_options(grid, Action.TOGGLE_CHART, state).notice
    # smoothing is drawn on the chart, for one worker's curve: elsewhere s says so
    smoothed = next_options(opts, Action.CYCLE_SMOOTHING, state)
    assert smoothed.smoothing == 0.8 and "drawn on the chart (c)" in smoothed.notice
    chart = ViewOptions(chart=True)
    assert next_options(chart, Action.CYCLE_SMOOTHING, state).notice == ""
    two = build(steps=50, workers=2)
    lines = ViewOptions(chart=True, workers_mode="lines")
    assert "one worker's curve (b)" in next_options(lines, Action.CYCLE_SMOOTHING, two).notice


def test_summary_lists_the_alerts() -> None:
    from trainmon.report import summary

    state = build(steps=300, nan_at=100)
    AlertWatch().check(state, NOW, 60.0)
    text = summary(state, ViewOptions(), NOW)
    assert "1 alert:\n    NaN/Inf in loss (rank 0)" in text


def test_the_readme_theme_file_example_loads(tmp_path: Path) -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    example = re.search(r"```toml\n(.*?)```", readme, re.S)
    assert example, "the README shows a theme file"
    path = tmp_path / "theme.toml"
    path.write_text(example.group(1))
    assert str(load_theme("dark", path).styles["tm.line"]) == "bright_green"


# -- found by review: each of these crashed, leaked or miscounted ---------------------


def test_grid_keeps_cells_it_shows_after_other_sizes() -> None:
    """Cells of a still run drawn long ago are still on screen: the cache of other sizes
    may be pruned, never what is shown."""
    state = build(metrics=8, steps=300)
    opts = ViewOptions(grid=True)
    draw(state, opts, width=200, height=60)  # nothing changes: cells drawn once, here
    for width in range(120, 200, 10):  # a window resized a few times, and back
        draw(state, opts, width=width, height=60)
    assert len(run_cache(state.runs["r"], "grid")) > 4 * 7 + 8, "enough sizes to prune some"
    for _ in range(60):
        assert "metrics 1–" in draw(state, opts, width=200, height=60)


@pytest.mark.parametrize("values", [[1e308, -1e308], [1e300], [-1e308, 1e308, 3.0]])
def test_extreme_values_draw_in_every_view(values: list[float]) -> None:
    state = RunState()
    for step, value in enumerate(values * 10):
        state.apply(
            Record(
                "metrics", "r", "w", step + 1, NOW, step=step, metrics={"loss": value, "x": value}
            ),
            NOW,
        )
    for view in VIEWS.values():
        for log_y in (False, True):
            out = draw(state, ViewOptions(**{**view, "log_y": log_y}), width=120, height=40)  # type: ignore[arg-type]
            assert "trainmon" in out


def test_alert_watch_forgets_runs_the_state_let_go() -> None:
    state = RunState(Limits(runs=4))
    watch = AlertWatch()
    for index in range(50):
        run = f"run{index}"
        state.apply(Record("hello", run, "w", 0, NOW), NOW)
        state.apply(Record("metrics", run, "w", 2, NOW, step=0, metrics={"loss": math.nan}), NOW)
        state.apply(Record("bye", run, "w", 3, NOW), NOW)
        watch.check(state, NOW, 60.0)
    assert len(state.runs) <= 4
    assert len(watch.raised) <= 3 * 4 and len(watch.statuses) <= 4 and len(watch.spikes) <= 4


def test_limits_count_records_alike_in_both_forms() -> None:
    by_columns, by_records = (
        RunState(Limits(workers=1, runs=1)),
        RunState(Limits(workers=1, runs=1)),
    )
    for state in (by_columns, by_records):
        state.apply(Record("hello", "r", "w0", 0, NOW), NOW)
    for worker, run in (("w1", "r"), ("w0", "other")):
        columns = Columns(
            run, worker, 1, [NOW] * 100, list(range(100)), [0] * 100, {"x": [1.0] * 100}
        )
        by_columns.apply_columns(columns, NOW)
        for record in columns.records():
            by_records.apply(record, NOW)
    assert by_columns.runs["r"].untracked_workers == by_records.runs["r"].untracked_workers == 100
    assert by_columns.untracked_runs == by_records.untracked_runs == 100


def test_switching_runs_follows_and_a_forgotten_run_falls_back() -> None:
    state = build(steps=1000, run="a")
    build(steps=50, run="b", state=state)
    opts = ViewOptions(run="a", zoom=2, window=(100.0, 350.0))
    opts = next_options(opts, Action.NEXT_RUN, state)
    assert opts.run == "b" and opts.window is None
    del state.runs["b"]  # forgotten past the run limit
    assert "run a" in draw(state, opts, width=120, height=40).splitlines()[0]
    assert next_options(opts, Action.NEXT_METRIC, state).metric == "accuracy"


def test_chosen_worker_without_the_main_metric_charts_the_leads() -> None:
    state = build(workers=2, steps=100)
    state.apply(Record("metrics", "r", "r-w9", 1, NOW, step=0, metrics={"other": 1.0}), NOW)
    out = draw(state, ViewOptions(chart=True, worker="r-w9"), width=120, height=40)
    assert "loss · 100 steps" in out
    assert re.search(r"[⠁-⣿]", out), "a line is drawn"


_names = (
    st.text(  # printable: letters, marks, numbers, punctuation, symbols, space
        st.characters(whitelist_categories=("L", "M", "N", "P", "S")) | st.just(" "),
        min_size=1,
        max_size=40,
    )
    | st.text(st.sampled_from("[]/ab=@"), min_size=1, max_size=12)  # Rich markup, or near it
    | st.sampled_from(["x[/]", "[bold red]y", "[/]", "[link=x]z"])
)
_wire_records = st.lists(
    st.tuples(
        st.sampled_from(["hello", "metrics", "metrics", "metrics", "alert", "bye"]),
        st.sampled_from(["r", "other run"]) | _names,
        st.sampled_from(["w1", "w2"]) | _names,
        st.integers(0, 60),
        st.none() | st.integers(0, 2**53),
        st.dictionaries(
            st.sampled_from(["loss", "accuracy", "grad_norm"]) | _names,
            st.floats() | st.sampled_from([1e308, -1e308, 5e-324, 0.0, -0.0]),
            max_size=4,
        ),
        _names,
    ),
    min_size=1,
    max_size=40,
)


def _state_from(records: list[tuple[Any, ...]]) -> RunState:
    """A state fed the records _wire_records makes (a name, an alert text, a host)."""
    state = RunState(Limits(window=32))
    for kind, run, worker, seq, step, metrics, text in records:
        info: dict[str, Any] = {}
        if kind == "hello":
            info = {"host": text, "rank": seq % 4}
        elif kind == "alert":
            info = {"title": text, "text": text}
        record = Record(
            kind,
            run,
            worker,
            seq,
            NOW - 60 + seq,
            step=step if kind == "metrics" else None,
            metrics=metrics if kind == "metrics" else {},
            info=info,
        )
        state.apply(record, NOW - 60 + seq)
    return state


@settings(max_examples=40, deadline=None)
@given(_wire_records)
@example([("metrics", "r", "w1", 0, None, {"loss": 5e-324}, "0")])  # once a ZeroDivisionError
@example(
    [
        ("metrics", "r", "w1", 0, 3, {"loss": 0.0}, "0"),
        ("metrics", "r", "w1", 1, 4, {"loss": 5e-324}, "0"),
    ]
)
def test_any_records_draw_in_every_view(records: list[tuple[Any, ...]]) -> None:
    """Whatever valid records arrive (any printable names, extreme values and steps),
    every view draws at 80x24 and 200x60 without raising, filling the screen."""
    state = _state_from(records)
    AlertWatch().check(state, NOW, 60.0)
    for view in VIEWS.values():
        for width, height in ((80, 24), (200, 60)):
            out = draw(state, width=width, height=height, **view)
            assert len(out.split("\n")[:-1]) == height


_any_options = st.builds(
    ViewOptions,
    chart=st.booleans(),
    grid=st.booleans(),
    zoom=st.integers(0, 12),
    window=st.none()
    | st.tuples(st.floats(-1e18, 1e18, allow_nan=False), st.floats(-1e18, 1e18, allow_nan=False)),
    log_y=st.booleans(),
    robust=st.booleans(),
    smoothing=st.sampled_from([0.0, 0.6, 0.99]),
    workers_mode=st.sampled_from(["one", "band", "lines"]),
    worker=st.none() | st.sampled_from(["w1", "w2", "gone"]),
    overlay=st.none() | st.sampled_from(["r", "other run", "gone"]),
    metric=st.none() | st.sampled_from(["loss", "accuracy", "gone"]),
    history=st.integers(2, 1000),
    page=st.integers(0, 5),
    paused=st.booleans(),
    runs_list=st.booleans(),
    help=st.booleans(),
)


@settings(max_examples=30, deadline=None)
@given(_wire_records, _any_options, st.sampled_from([(80, 24), (200, 60), (40, 10)]))
def test_any_records_draw_with_any_options(
    records: list[tuple[Any, ...]], opts: ViewOptions, size: tuple[int, int]
) -> None:
    """Any mix of keys' effects (zoom, pan anywhere, log, robust, a worker or run that
    is gone, a page past the end) draws any records at any size, filling the screen."""
    state = _state_from(records)
    out = draw(state, opts, width=size[0], height=size[1])
    assert len(out.split("\n")[:-1]) == size[1]


def test_runs_list_and_summary_show_the_config() -> None:
    """The hyperparameters a run sent (``Monitor(config=...)``) are in the runs list and
    the exit summary: nested maps as dotted keys; with little room, cut with a count."""
    from trainmon.report import summary

    state = build(workers=2, metrics=1, steps=20)
    config = {"lr": 3e-4, "model": "mlp", "optim": {"name": "adam", "betas": [0.9, 0.999]}}
    config.update({f"extra_{i}": i for i in range(30)})
    info = {"rank": 5, "config": config}  # rank 0 sent none: the first that did
    state.apply(Record("hello", "r", "late", 0, NOW - 60, info=info), NOW)
    out = draw(state, ViewOptions(runs_list=True), width=100, height=40)
    assert "config of r (from rank 5)" in out
    assert re.search(r"optim\.betas +\[0\.9, 0\.999\]", out) and re.search(r"lr +0\.0003", out)
    shown = len(re.findall(r"│  (lr|model|optim\.|extra_)", out))
    hidden = re.search(r"… (\d+) more", out)
    assert hidden and shown + int(hidden[1]) == 34, "34 items do not fit in 40 lines"
    small = draw(state, ViewOptions(runs_list=True), width=80, height=24)
    assert "config of r" in small and "▶" in small, "the runs keep their rows"
    text = summary(state, ViewOptions(), NOW)
    assert "  config: lr=0.0003, model=mlp, optim.name=adam, optim.betas=[0.9, 0.999]" in text
    assert max(len(line) for line in text.splitlines()) < 240, "a long config is cut"
    narrow = summary(state, ViewOptions(), NOW, width=80)
    config_line = next(x for x in narrow.splitlines() if x.startswith("  config:"))
    assert len(config_line) <= 80 and re.search(r"… \d+ more$", config_line)
    # a config past what is kept: the count covers what config_items left out too
    huge = {f"k{i}": i for i in range(1000)}
    state.apply(Record("hello", "r", "r-w0", 0, NOW - 59, info={"rank": 0, "config": huge}), NOW)
    out = draw(state, ViewOptions(runs_list=True), width=100, height=30)
    shown = len(re.findall(r"│  k\d+ ", out))
    hidden = re.search(r"… ([\d,]+) more", out)
    assert "(from rank 0)" in out and hidden and shown + int(hidden[1].replace(",", "")) == 1000
    line = next(x for x in summary(state, ViewOptions(), NOW).splitlines() if "config" in x)
    listed = re.findall(r"k\d+=", line)
    assert line.endswith(f", … {1000 - len(listed)} more") and len(line) < 230
    quiet = draw(build(metrics=1, steps=20), ViewOptions(runs_list=True), width=100, height=30)
    assert "config" not in quiet, "no heading without a config"


def test_frames_and_state_make_no_reference_cycles() -> None:
    """The monitor freezes what is alive out of the garbage collector's passes after
    each frame (trainmon.app.pacing.Collector), which is safe only if nothing it does makes
    cyclic garbage: frames of every view (Rich's Layout made two cycles a frame), the
    alert watch, and runs let go at the limit."""
    import gc

    gc.collect()
    gc.disable()
    try:
        state = build(workers=4, metrics=8, steps=600, nan_at=300)
        watch = AlertWatch()
        for kw in VIEWS.values():
            watch.check(state, NOW, 60.0)
            for width, height in SIZES:
                draw(state, ViewOptions(**kw), width, height)  # type: ignore[arg-type]
        small = RunState(Limits(runs=2))
        for k in range(6):
            small.apply(Record("metrics", f"r{k}", "w", 1, 1.0, step=1, metrics={"l": 1.0}), 1.0)
            small.apply(Record("bye", f"r{k}", "w", 2, 1.0), 1.0)
        assert small.forgotten_runs == 4
        del state, watch, small
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_collector_freezes_each_frame_and_frees_cycles_in_its_full_pass() -> None:
    """After a frame all that is alive leaves the collector's passes; a cycle made
    meanwhile by anything else is freed at the periodic full pass; on exit nothing
    stays frozen."""
    import gc
    import weakref

    from trainmon.app.pacing import collector as _collector

    class Node:
        other: object = None

    with _collector() as collector:
        node = Node()
        node.other = node  # a cycle, alive when frozen
        gone = weakref.ref(node)
        collector.frame()
        assert gc.get_freeze_count() > 0
        del node
        gc.collect()
        assert gone() is not None, "frozen: the ordinary passes do not see it"
        collector.next_full = 0.0
        collector.frame()
        assert gone() is None, "the full pass freed it"
    assert gc.get_freeze_count() == 0


def test_progress_line_gives_way_from_its_least_needed_figures() -> None:
    """At 80 columns with throughput shown, tokens/s and samples/s give way so the bar,
    the epoch, the percent, the ETA and the step count stay whole (they were cut to
    "Epoc… … step 90…")."""
    state = build(workers=2, metrics=3, steps=300, extra={"batch_size": 64.0, "tokens": 512.0})
    narrow = next(line for line in draw(state, width=80).splitlines() if "Epoch" in line)
    assert "Epoch 1 ━" in narrow and "50%" in narrow and "ETA 00:02" in narrow
    assert "step 300/600" in narrow and "tokens/s" not in narrow
    wide = next(line for line in draw(state, width=200).splitlines() if "Epoch" in line)
    assert "samples/s" in wide and "tokens/s" in wide and "step 300/600" in wide


def test_help_lists_every_key_at_80x24() -> None:
    """The help did not fit 80x24 and its last keys were cut off; when one column does
    not fit it uses two, so every key shows (descriptions cut if need be)."""
    from trainmon.keys import HELP

    small = draw(build(), ViewOptions(help=True), width=80, height=24)
    tall = draw(build(), ViewOptions(help=True), width=120, height=40)
    for keys, what in HELP:
        assert re.search(rf"│ {re.escape(keys)} |  {re.escape(keys)} ", small), keys
        assert f"{keys.ljust(8)}{what}" in tall, "one column when it fits"


# -- the stats and the summary, in the states that test them -----------------------------

_LONG = "x" * 120 + "_entropy"  # the longest name the protocol allows: 128 characters


def _metrics_state(kind: str) -> RunState:
    """Runs whose metrics are awkward to show: only on some workers, on 64 workers,
    NaN and infinities, long and wide names."""
    state = RunState()
    ranks = {"some workers": 4, "64 workers": 64}.get(kind, 1)
    for rank in range(ranks):
        info = {"host": "node", "pid": 100 + rank, "rank": rank}
        state.apply(Record("hello", "r", f"w{rank}", 0, NOW - 3, info=info), NOW - 3)
    for seq in range(1, 4):
        for rank in range(ranks):
            values: dict[str, float] = {}
            if kind == "some workers":  # rank 0 and 1 train, rank 2 loads, rank 3 waits
                values = {"loss": 0.5 / seq, "val_acc": 0.9746}
                values = {0: values, 1: values, 2: {"data_time": 0.0123}}.get(rank, {})
            elif kind == "64 workers":
                values = {"loss": 0.5 / seq, f"queue_rank{rank}": float(rank)}
            elif kind == "NaN and Inf":
                values = {"loss": math.nan, "accuracy": math.inf, "grad_norm": -math.inf}
                values |= {"lr": 3e-4, "val_acc": math.nan, "eval_loss": math.inf}
            else:  # long names
                values = {"loss": 0.25, _LONG: 1.5, "损失" * 30: 2.5, "🔥" * 20: 3.5}
            if values:
                record = Record("metrics", "r", f"w{rank}", seq, NOW - 3 + seq, step=seq)
                state.apply(record._replace(metrics=values), NOW - 3 + seq)
    return state


_EXPECTED = {  # in the summary, and (the first of each) in the stats panel
    "some workers": ["loss: last 0.1667", "val_acc: last 97.46%", "data_time: last 0.01230"],
    "64 workers": ["loss: last 0.1667", "queue_rank0: last 0", "queue_rank18: last 18"],
    "NaN and Inf": [
        "loss: last nan",
        "accuracy: last inf",
        "grad_norm: last -inf",
        "lr: last 3.000e-04",
        "val_acc: last nan",
        "eval_loss: last inf",
    ],
    "long names": ["loss: last 0.2500 (best 0.2500 at step 1)", ": last 1.500", ": last 3.500"],
}


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("kind", list(_EXPECTED))
def test_stats_and_summary_of_awkward_metrics(kind: str, size: tuple[int, int]) -> None:
    """Each state's metrics are in the summary and the stats, with the same values;
    the dashboard and the summary's metric lines fit the width (in terminal cells) and
    the stats' values start in one column."""
    from rich.cells import cell_len

    from trainmon.report import summary

    width, height = size
    state = _metrics_state(kind)
    lines = draw(state, width=width, height=height).split("\n")[:-1]
    assert len(lines) == height and max(cell_len(line) for line in lines) <= width
    report = summary(state, ViewOptions(), NOW, width)
    metric_lines = [line for line in report.splitlines() if ": last " in line]
    assert all(cell_len(line) <= width for line in metric_lines), report
    for expected in _EXPECTED[kind]:
        assert expected in report, expected
    stats = [line.split("╭─ Stats")[-1] for line in lines if "│ " in line and "││" in line]
    stats = [line.split("││")[-1] for line in stats]
    values = {}
    for expected in _EXPECTED[kind]:
        name, value = expected.split(": last ")
        value = value.split(" ")[0]
        label = "grad norm" if name == "grad_norm" else name[:6]
        row = next((row for row in stats if f" {value}" in row and label in row), None)
        if row is not None or width == 200:  # 80x24 shows the first rows only
            assert row is not None, (expected, "\n".join(stats))
            values[name] = cell_len(row[: row.index(f" {value}") + 1])
    assert len(set(values.values())) <= 1, values
    if kind == "some workers":
        assert "data_time: last 0.01230 (rank 2)" in report
    if kind == "64 workers":
        assert "… 45 more metrics" in report  # loss and the first 19 of the 64 ranks'
    if kind == "long names" and width == 200:  # names take the room the panel has
        cut = next(row for row in stats if "xxx" in row)
        assert cell_len(cut[: cut.index("… 1.500")]) >= 60 and "_entropy" not in cut


def test_a_run_chosen_with_r_gives_way_when_it_is_lost() -> None:
    """r picks the newer run; it is killed while the first goes on logging: once it is
    lost the live run is shown again, and r still moves between them."""
    state = build(steps=100, run="a")
    opts = ViewOptions()
    assert "run a" in draw(state, opts).splitlines()[0]
    build(steps=50, run="b", state=state)
    assert "run a" in draw(state, opts).splitlines()[0], "a newer run does not take over"
    opts = next_options(opts, Action.NEXT_RUN, state)
    assert "run b" in draw(state, opts).splitlines()[0]
    later = NOW + 10  # b silent since NOW; a logs on
    state.apply(Record("metrics", "a", "a-w0", 101, later, step=101, metrics={"loss": 1.0}), later)
    assert "run a" in draw(state, opts).splitlines()[0]
    opts = next_options(opts, Action.NEXT_RUN, state)
    assert opts.run == "b" and "run b" in draw(state, opts).splitlines()[0]
