"""Runs drawn together, rendered to a StringIO console: several overlays each in its
own style with a legend, the difference of the main metric in the stats, the x axis
in seconds (key t), and a run compared from disk never shown for being first."""

from __future__ import annotations

import io
import math
import re
from dataclasses import replace
from pathlib import Path

from rich.console import Console, RenderableType

from trainmon.app import is_done
from trainmon.cli.compare import comparison_table, elapsed_records, exact_points
from trainmon.controls.reducer import next_options
from trainmon.keys import KEYMAP, Action
from trainmon.state import RunState
from trainmon.state.alerts import AlertWatch
from trainmon.view import ViewOptions, render, shown_run, stats_panel
from trainmon.view.compare import (
    difference,
    difference_text,
    keep_elapsed,
    keep_exact,
    keep_past,
    overlaid,
)
from trainmon.view.format import format_value
from trainmon.view.lines import chart_lines
from trainmon.view.theme import load_theme
from trainmon_client.protocol import Record

NOW = 50_000.0


def records(run: str, scale: float, steps: range, start: float = NOW - 100, every: float = 0.5):
    """A run's records: hello, ``loss = scale / (step + 1)`` at each of ``steps``, bye."""
    out = [Record("hello", run, f"{run}-w", 0, start, info={"host": "h", "pid": 1})]
    for seq, step in enumerate(steps, 1):
        t = start + seq * every
        out.append(
            Record("metrics", run, f"{run}-w", seq, t, step, metrics={"loss": scale / (step + 1)})
        )
    out.append(Record("bye", run, f"{run}-w", len(out), start + len(out) * every))
    return out


def state_of(*runs: list[Record]) -> RunState:
    state = RunState()
    for record in sorted((r for run in runs for r in run), key=lambda r: r.time):
        state.apply(record, record.time)
    return state


def draw(
    renderable: RenderableType, width: int = 120, height: int = 40, color: bool = False
) -> str:
    console = Console(
        file=io.StringIO(),
        width=width,
        height=height,
        force_terminal=color,
        color_system="truecolor" if color else None,
        theme=load_theme("dark"),
        legacy_windows=False,
    )
    console.print(renderable)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(out, str)
    return out


def test_several_overlays_each_in_its_own_style_with_a_legend() -> None:
    state = state_of(
        records("a", 1.0, range(100)), records("b", 2.0, range(100)), records("c", 3.0, range(50))
    )
    run = state.runs["a"]
    opts = ViewOptions(run="a", chart=True, compared=("a", "b", "c"), smoothing=0.0)
    assert [r.name for r in overlaid(state, run, opts)] == ["b", "c"]
    lines, what = chart_lines(state, run, "loss", opts)
    assert [line.style for line in lines] == ["tm.line", "tm.overlay", "tm.overlay2"]
    assert what == "vs b (magenta), c (green)"
    # the o key's overlay comes first, each run once
    picked = replace(opts, overlay="c")
    assert [r.name for r in overlaid(state, run, picked)] == ["c", "b"]
    out = draw(render(state, opts, NOW), color=True)
    assert "vs b (magenta), c (green)" in re.sub(r"\x1b\[[0-9;]*m", "", out)
    # the theme's colours for the three lines are all on screen: cyan, magenta, green
    dark = load_theme("dark").styles
    for style in ("tm.line", "tm.overlay", "tm.overlay2"):
        colour = dark[style].color
        assert colour is not None and colour.triplet is None  # standard colours
    assert all(code in out for code in ("\x1b[36m", "\x1b[35m", "\x1b[32m"))


def test_the_difference_at_the_latest_step_both_have() -> None:
    a = state_of(records("a", 1.0, range(0, 300, 3)), records("b", 2.0, range(0, 200, 2)))
    run, other = a.runs["a"], a.runs["b"]
    # steps shared: multiples of 6 up to 198 → 198
    value, step, theirs = difference(run, other, "loss") or (0.0, 0, 0)
    assert (step, theirs) == (198, 198)
    assert abs(value - (1.0 / 199 - 2.0 / 199)) < 1e-12
    assert difference_text(run, other, "loss") == "-0.005025 at step 198"
    assert difference_text(other, run, "loss") == "+0.005025 at step 198"
    panel = stats_panel(a, run, ViewOptions(run="a", compared=("a", "b")))
    assert re.search(r"vs b\s+-0\.005025 at step 198", draw(panel, width=60))
    assert "vs " not in draw(stats_panel(a, run, ViewOptions(run="a")), width=60)


def test_the_difference_where_no_step_is_shared_or_a_metric_is_missing() -> None:
    state = state_of(records("a", 1.0, range(1, 100, 2)), records("b", 1.0, range(0, 100, 2)))
    # no step shared: the points nearest the last step both reach (98)
    assert difference_text(state.runs["a"], state.runs["b"], "loss") == (
        f"+{format_value(1 / 98 - 1 / 99)} at steps 97 / 98"
    )
    assert difference(state.runs["a"], state.runs["b"], "accuracy") is None
    assert difference_text(state.runs["a"], state.runs["b"], "accuracy") == "–"
    # one run starts after the other ends: nothing to compare them at, either way
    apart = state_of(records("late", 1.0, range(1000, 1100)), records("early", 1.0, range(500)))
    late, early = apart.runs["late"], apart.runs["early"]
    assert difference(late, early, "loss") is None and difference(early, late, "loss") is None
    assert difference_text(late, early, "loss") == "–"


def test_seconds_toggle_draws_the_twin_and_says_seconds() -> None:
    fast = records("fast", 1.0, range(100), every=0.1)  # 10 s
    slow = records("slow", 1.0, range(100), every=1.0)  # 100 s
    state = state_of(fast, slow)
    opts = ViewOptions(run="fast", chart=True, compared=("fast", "slow"), time_axis=True)
    assert "t x in seconds" in draw(render(state, opts, NOW))
    no_twin = next_options(opts, KEYMAP["t"], state)
    assert not no_twin.seconds and "in trainmon compare" in no_twin.notice
    twin = state_of(elapsed_records(fast + slow))
    keep_elapsed(state, twin)
    assert twin.runs["slow"].lead is not None
    assert twin.runs["slow"].lead.series["loss"].steps[-1] == 1000  # 100 s in tenths
    timed = next_options(opts, Action.TIME_AXIS, state)
    assert timed.seconds
    out = draw(render(state, timed, NOW))
    assert "x in seconds since each run's start" in out
    assert re.search(r"└0\.\d s\s+.*100\.0 s", out)  # the slow run's 100 s end the axis
    assert "t x in steps" in out
    back = draw(render(state, next_options(timed, Action.TIME_AXIS, state), NOW))
    assert "100 steps" in back and " s " not in back.split("└")[1].split("\n")[0]


def test_a_past_run_is_drawn_from_beside_the_state_never_shown() -> None:
    state = RunState()
    keep_past(state, state_of(records("past (kept)", 2.0, range(100), start=NOW - 5000)))
    opts = ViewOptions(compared=("past (kept)",), chart=True)
    state.settle(opts.run)
    assert shown_run(state, opts) is None and not state.runs
    assert not is_done(state, NOW)  # the past run has ended: not the live state's end
    assert "Waiting for records" in draw(render(state, opts, NOW))
    for record in records("live", 1.0, range(50), start=NOW - 30):
        state.apply(record, record.time)
    state.settle(opts.run)
    shown = shown_run(state, opts)
    assert shown is not None and shown.name == "live" and list(state.runs) == ["live"]
    out = draw(render(state, opts, NOW))
    assert "run live" in out and "vs past (kept) (magenta)" in out
    # live minus past at step 49: 1/50 - 2/50 (the label cut to the others' width)
    assert re.search(r"vs past \(…\s+-0\.02000 at step 49", out)
    listed = draw(render(state, replace(opts, runs_list=True), NOW))
    assert "Runs (2)" in listed and re.search(r"◆\s+past \(kept\)", listed)
    assert re.search(r"▶\s+live", listed)


def test_comparison_table() -> None:
    state = state_of(records("a", 1.0, range(100)), records("b", 2.0, range(100)))
    table = comparison_table(state, ["a", "b", "gone"], width=100)
    lines = table.splitlines()
    assert re.search(r"run\s+metric\s+last\s+best\s+vs a", lines[0])
    assert re.search(r"a\s+loss\s+0\.01000\s+0\.01000\s+–", lines[1])
    assert re.search(r"b\s+loss\s+0\.02000\s+0\.02000\s+\+0\.01000 at step 99", lines[2])
    assert re.search(r"gone\s+–", lines[3])


def test_zoom_and_pan_in_seconds_move_in_seconds() -> None:
    slow = records("slow", 1.0, range(100), every=1.0)  # steps 0-99 over 100 s
    state = state_of(slow)
    keep_elapsed(state, state_of(elapsed_records(slow)))
    opts = ViewOptions(run="slow", chart=True, time_axis=True, seconds=True)
    opts = next_options(next_options(opts, Action.ZOOM_IN, state), Action.PAN_LEFT, state)
    assert opts.window is not None
    left, right = opts.window
    assert right - left == (1000 - 10) / 2  # half the tenths of a second (not 99 steps)


def test_the_difference_of_long_runs_is_at_the_step_itself() -> None:
    """A run longer than the window (10,000 points) keeps its older points in buckets,
    one point every 64 or 1,024 steps: the points kept beside the state (a run read
    from disk) give the latest step both runs have, 1,199, not a bucket's last step."""
    for length in (20_000, 100_000):
        long, short = records("long", 1.0, range(length)), records("short", 2.0, range(1200))
        state = state_of(long, short)
        run, other = state.runs["short"], state.runs["long"]
        assert other.lead is not None and len(other.lead.series["loss"].steps) < length
        keep_exact(state, exact_points(long + short))
        value, step, theirs = difference(run, other, "loss", state) or (0.0, 0, 0)
        assert (step, theirs) == (1199, 1199), length
        assert abs(value - (2.0 / 1200 - 1.0 / 1200)) < 1e-12
        assert difference_text(other, run, "loss", state).endswith(" at step 1,199")
        # the stats and compare's table say the same
        opts = ViewOptions(run="short", compared=("short", "long"))
        assert "at step 1,199" in draw(stats_panel(state, run, opts), width=80)
        assert "at step 1,199" in comparison_table(state, ["long", "short"])
    # a past run beside a live one (watch --compare): its points are kept beside it
    live = state_of(records("live", 2.0, range(1200)))
    past = state_of(long)
    keep_exact(past, exact_points(long))
    keep_past(live, past)
    assert difference_text(live.runs["live"], past.runs["long"], "loss", live).endswith(
        " at step 1,199"
    )


def test_a_long_run_name_is_cut_in_the_stats_not_the_values_moved() -> None:
    """``vs lr-0.01 (kept 12-06 19:33)`` is cut to the other labels' width: every value
    stays in the column it has without the difference row; the legend names it whole."""
    past = "lr-0.01 (kept 12-06 19:33)"
    state = state_of(records("a", 1.0, range(100)), records(past, 2.0, range(100)))
    run = state.runs["a"]
    alone = draw(stats_panel(state, run, ViewOptions(run="a")), width=60)
    opts = ViewOptions(run="a", compared=("a", past), chart=True)
    both = draw(stats_panel(state, run, opts), width=60)

    def column(out: str, label: str, value: str) -> int:
        line = next(line for line in out.splitlines() if line.startswith(f"│ {label}"))
        return line.index(value, len(label) + 2)

    for label, value in (("loss", "0.01000"), ("records", "102"), ("rejected", "0")):
        assert column(both, label, value) == column(alone, label, value), both
    assert column(both, "vs lr-0.0…", "-0.01000 at step 99") == column(alone, "loss", "0.01")
    assert f"vs {past} (magenta)" in draw(render(state, opts, NOW), width=160)


def test_an_accuracy_difference_is_in_percentage_points() -> None:
    """Accuracy is shown in percent, so its difference is in percentage points, whether
    it was logged as a fraction or in percent; a loss's stays a number."""

    def run(name: str, accuracy: float) -> list[Record]:
        out = records(name, 1.0, range(10))
        return [
            r._replace(metrics={**r.metrics, "accuracy": accuracy}) if r.metrics else r for r in out
        ]

    fractions = state_of(run("a", 0.8), run("b", 0.753125))
    a, b = fractions.runs["a"], fractions.runs["b"]
    assert difference_text(a, b, "accuracy") == "+4.69 pp at step 9"
    assert difference_text(b, a, "accuracy") == "-4.69 pp at step 9"
    assert difference_text(a, b, "loss") == "0 at step 9"
    percents = state_of(run("a", 80.0), run("b", 75.3125))
    assert difference_text(percents.runs["a"], percents.runs["b"], "accuracy") == (
        "+4.69 pp at step 9"
    )
    only = [
        [
            r._replace(metrics={"val_acc": r.metrics["accuracy"]}) if r.metrics else r
            for r in run(name, value)
        ]
        for name, value in (("a", 0.5), ("b", 0.25))
    ]
    table = comparison_table(state_of(*only), ["a", "b"])
    assert re.search(r"b\s+val_acc\s+25\.00%\s+25\.00%\s+-25\.00 pp at step 9", table)


def test_the_docs_say_t_is_compares_and_how_the_steps_are_taken() -> None:
    """docs/compare.md: t works in trainmon compare only (watch --compare answers with
    the notice the docs quote), and the difference takes the points at or before the
    last step both reach (the example given is the one the code says)."""
    docs = " ".join((Path(__file__).parent.parent / "docs" / "compare.md").read_text().split())
    state = state_of(records("a", 1.0, range(10)))
    notice = next_options(ViewOptions(run="a"), Action.TIME_AXIS, state).notice
    assert f"`{notice}`" in docs and "All of watch's keys work" not in docs
    assert "at the last point of each at or before the last step both reach" in docs
    even_odd = state_of(records("a", 1.0, range(0, 1201, 2)), records("b", 2.0, range(1, 1200, 2)))
    said = difference_text(even_odd.runs["a"], even_odd.runs["b"], "loss").split(" at ")[1]
    assert f"`at {said}`" in docs


def test_runs_that_ended_are_told_from_their_end_not_ago() -> None:
    """trainmon compare draws runs that ended: its alerts were all raised as they were
    read (no "ago"), and a worker's last seen counts from its run's end, not from the
    newest run's last record."""
    short = records("short", 1.0, range(50))  # ends 25 s before the long one
    short[10] = short[10]._replace(metrics={"loss": math.nan})
    state = state_of(short, records("long", 1.0, range(100)))
    end = max(w.last_seen for run in state.runs.values() for w in run.workers.values())
    AlertWatch().check(state, end, 60.0)
    assert any(alert.run == "short" for alert in state.alerts)
    opts = ViewOptions(run="short", compared=("short", "long"), chart=True)
    live = draw(render(state, opts, end), height=60)
    assert "(00:00 ago)" in live and re.search(r"2\d\.\ds ago", live)  # what was said
    ended = draw(render(state, replace(opts, ended=True), end), height=60)
    assert "NaN" in ended and " ago" not in ended, ended
    assert re.search(r"│\s+–\s+h\s+1\s+49\s+at the end\s+–", ended)  # not 25.5s ago
    assert re.search(r"elapsed 00:2[56]", ended)  # the short run's own length
