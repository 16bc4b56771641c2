"""The dashboard rendered to a Console writing into a StringIO, read as plain text."""

from __future__ import annotations

import ast
import dataclasses
import io
import math
import re
from pathlib import Path

import pytest
from rich.cells import cell_len
from rich.console import RenderableType

import trainmon.view
from tests.test_state import beat, fed, hello, metrics
from trainmon.names import HELD_OUT_NAMES, LR_NAMES, is_accuracy, is_loss
from trainmon.report import status_line, summary
from trainmon.state import RunState
from trainmon.view import (
    ViewOptions,
    format_duration,
    format_percent,
    format_value,
    render,
)
from trainmon.view.sparkline import Sparkline, columns
from trainmon.view.theme import console_for
from trainmon_client.protocol import Record

NOW = 100.5


def text(renderable: RenderableType, width: int = 80, height: int = 24) -> str:
    console = console_for(
        file=io.StringIO(),
        width=width,
        height=height,
        color_system=None,
        legacy_windows=False,
        force_terminal=False,
    )
    console.print(renderable)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    return str(out)


def screen(
    state: RunState, opts: ViewOptions | None = None, width: int = 80, height: int = 24
) -> str:
    return text(
        render(state, opts or ViewOptions(address="tcp://127.0.0.1:5555"), NOW), width, height
    )


def test_waiting_screen_says_where() -> None:
    """Before any record the screen says it is waiting, and on which address."""
    out = screen(RunState())
    assert "Waiting for records on tcp://127.0.0.1:5555" in out
    assert "Monitor('tcp://127.0.0.1:5555')" in out
    assert "q quit" in out


def test_waiting_screen_of_a_connecting_monitor() -> None:
    """With --connect the hint is the training side that listens, and the screen says
    why nothing comes yet; the plain line says it too."""
    state = RunState()
    state.note_link(
        "down (retrying)", "not connected to tcp://gpu1:5556: nothing answers there (retrying)"
    )
    opts = ViewOptions(address="tcp://gpu1:5556", connecting=True)
    out = screen(state, opts, width=100)
    assert "Connecting to tcp://gpu1:5556" in out
    assert "nothing answers there" in out
    assert "Monitor('tcp://0.0.0.0:5556', bind=True)" in out
    assert "nothing answers there" in status_line(state, opts, NOW)
    assert "received from tcp://gpu1:5556; not connected" in summary(state, opts, NOW)
    state.note_link("", "")
    assert "connected; waiting for records" in screen(state, opts, width=100)


def test_waiting_screen_repeats_the_start_warnings() -> None:
    """A warning said at start (listening unencrypted beyond this machine) is on the
    waiting screen, not only printed under the dashboard where it shows after it ends."""
    opts = ViewOptions(address="tcp://0.0.0.0:5555", warnings=("warning: not encrypted",))
    assert "warning: not encrypted" in screen(RunState(), opts)


def test_waiting_screen_shows_rejects() -> None:
    """Garbage arriving before any good record is not mistaken for silence."""
    state = RunState()
    state.reject("undecodable payload")
    assert "1 messages rejected: undecodable payload" in screen(state)


def test_one_point() -> None:
    """A single record fills every panel without errors."""
    out = screen(fed(hello(epochs=5), metrics(1, loss=0.5, accuracy=0.9, grad_norm=0.1)))
    for expected in (
        "run r",
        "running",
        "loss",
        "0.5000",
        "90.00%",
        "0.1000",
        "best loss  0.5000 @ 0",
        "Epoch –/5",
        "rank",
        "1 worker",
    ):
        assert expected in out, expected


def test_fits_80_by_24() -> None:
    """The dashboard is exactly the terminal's size: no line wraps, nothing scrolls."""
    state = fed(hello(epochs=5), *(metrics(i, epoch=i // 20) for i in range(1, 200)))
    lines = screen(state).splitlines()
    assert len(lines) == 24
    assert all(len(line) <= 80 for line in lines)


def test_nan_is_shown_not_hidden() -> None:
    """A NaN loss reads as nan, marked in the sparkline and counted in its caption."""
    state = fed(hello(), metrics(1, loss=1.0), metrics(2, loss=math.nan))
    out = screen(state)
    assert "loss       nan" in out
    assert "×" in out and "1 non-finite" in out


def test_accuracy_as_percentage() -> None:
    """Accuracy reads as a percentage whether logged as a fraction or in percent."""
    assert format_percent(0.9123) == "91.23%"
    assert format_percent(91.23) == "91.23%"
    assert format_percent(math.nan) == "nan"


def test_many_workers_are_cut_with_a_count() -> None:
    """200 workers do not overflow the screen; the table says how many are hidden."""
    records = [hello(f"w{i:03d}", rank=i) for i in range(200)]
    out = screen(fed(*records))
    assert len(out.splitlines()) == 24
    assert "more workers not shown" in out
    hidden = int(out.split("… ")[1].split(" more")[0].replace(",", ""))
    shown = sum(1 for line in out.splitlines() if " h " in line)
    assert hidden + shown == 200


def test_missed_and_rejected_are_on_screen() -> None:
    """Gaps, client drops and rejects are counted where a person looks."""
    state = fed(hello(), metrics(1), metrics(5), beat(5, dropped=3))
    state.reject("bad")
    out = screen(state)
    assert "missed     3" in out and "dropped    3 by the client" in out
    assert "rejected   1" in out
    assert "link" not in out
    state.note_link("unknown host", "cannot connect to tcp://gpu1:5556: no host named 'gpu1'")
    assert "link       unknown host" in screen(state)
    assert "link unknown host: cannot connect" in status_line(state, ViewOptions(), NOW)


def test_paused_footer_counts_records() -> None:
    """A paused view says so and how many records arrived since."""
    out = screen(fed(hello(), metrics(1)), ViewOptions(paused=True, paused_records=42))
    assert "PAUSED" in out and "42 records arrived since" in out


def test_finished_run() -> None:
    """A run whose workers all said bye at its last step reads finished, 100% done; one
    that said bye before (Ctrl-C in training) reads how far it came, "ended early", and
    the summary says so."""
    done = fed(hello(steps=3), *(metrics(i) for i in (1, 2, 3)), Record("bye", "r", "w0", 4, 104.0))
    out = screen(done)
    assert "finished" in out and "100%" in out and "done" in out
    assert "ended early" not in summary(done, ViewOptions(), NOW)
    early = fed(hello(steps=10), metrics(1), metrics(2), Record("bye", "r", "w0", 3, 103.0))
    out = screen(early)
    assert "finished" in out and " 20%" in out and "ended early" in out and "done" not in out
    assert "finished (ended early, 20% of the way)" in summary(early, ViewOptions(), NOW)


def test_a_finished_run_counted_from_step_0_reads_its_steps() -> None:
    """A 600-step run logged at steps 0 to 599 reads "600 steps" once done, not
    "100% done step 599/600" (one short), and "step 599/600" while it still runs."""
    steps = [metrics(i + 1, step=i) for i in range(600)]
    running = fed(hello(steps=600), *steps)
    assert "step 599/600" in screen(running)
    done = fed(hello(steps=600), *steps, Record("bye", "r", "w0", 601, 800.0))
    out = screen(done)
    assert "100%" in out and "done" in out and "600 steps" in out and "599/600" not in out


def test_header_says_when_ranks_of_the_job_never_spoke() -> None:
    """A 2-rank job of which only rank 0 publishes: the header says 1 of 2 ranks seen;
    with both there, nothing is added."""
    one = fed(hello("w0", rank=0, world=2), metrics(1, "w0", loss=1.0))
    assert "1 worker (ranks seen 1 of 2)" in screen(one, width=120)
    both = fed(hello("w0", rank=0, world=2), hello("w1", rank=1, world=2))
    assert "2 workers" in screen(both, width=120) and "ranks seen" not in screen(both, width=120)


def test_large_terminal() -> None:
    """At 200x60 the dashboard fills the screen."""
    state = fed(hello(epochs=5), *(metrics(i) for i in range(1, 300)))
    lines = screen(state, width=200, height=60).splitlines()
    assert len(lines) == 60 and max(len(line) for line in lines) <= 200


def test_status_line_and_summary() -> None:
    """The plain line and the final summary carry the key numbers."""
    state = fed(hello(epochs=3), metrics(1, epoch=0, loss=0.5, accuracy=0.5))
    line = status_line(state, ViewOptions(), NOW)
    assert line.startswith("trainmon: run r · running · epoch 1/3 · step 0 · loss 0.5000")
    assert "acc 50.00%" in line and "nothing missed" in line
    report = summary(state, ViewOptions(), NOW)
    assert "loss: last 0.5000 (best 0.5000 at step 0)" in report
    assert "records received 2, rejected 0" in report


def test_summary_when_nothing_came() -> None:
    """Quitting before anything arrived says so."""
    assert "no records were received on X" in summary(RunState(), ViewOptions(address="X"), NOW)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (0.0, "0"),
        (0.23456, "0.2346"),
        (2.5, "2.500"),
        (64.0, "64"),  # a whole number (a batch size, a count) without decimals
        (-3.0, "-3"),
        (2_000_000.0, "2.000e+06"),  # as 2_000_000.5 would be: one form for a column
        (1234.5, "1234"),
        (1e-7, "1.000e-07"),
        (123456789.0, "1.235e+08"),
        (math.nan, "nan"),
        (math.inf, "inf"),
        (-math.inf, "-inf"),
    ],
)
def test_format_value(value: float, shown: str) -> None:
    """Values fit a column whatever their magnitude."""
    assert format_value(value) == shown


def test_format_duration() -> None:
    """Durations read as mm:ss, or h:mm:ss past an hour."""
    assert [format_duration(s) for s in (5, 65, 3725, None)] == ["00:05", "01:05", "1:02:05", "–"]


# -- the sparkline -------------------------------------------------------------


def spark(values: list[float], width: int = 10, height: int = 1) -> str:
    return text(Sparkline(values, height=height, width=width), width=width).rstrip("\n")


def test_sparkline_empty() -> None:
    """No values: blank rows of the full width."""
    assert spark([], height=2) == " " * 10 + "\n" + " " * 10


def test_sparkline_one_point_and_constant() -> None:
    """A flat series draws at half height rather than dividing by zero, across the
    whole width however few its values."""
    assert spark([3.0]) == "▄" * 10
    assert spark([3.0, 3.0, 3.0]) == "▄" * 10


def test_sparkline_with_fewer_values_than_columns_spans_the_width() -> None:
    """Three values in ten columns: each value over about a third of the width, in
    order, the last at the right edge (not a short line at the left)."""
    assert spark([0.0, 1.0, 2.0]) == "▁▁▁▁" + "▅▅▅" + "███"
    assert spark([1.0, math.nan, 2.0, math.inf], width=8) == "▁▁××██▲▲"
    assert columns([1.0, 2.0], 7) == [(1.0, 1.0, "")] * 4 + [(2.0, 2.0, "")] * 3


def test_sparkline_rises() -> None:
    """The lowest value is the lowest bar and the highest the full block."""
    line = spark([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], width=8)
    assert line[0] == "▁" and line[-1] == "█"
    assert list(line) == sorted(line, key="▁▂▃▄▅▆▇█".index)


def test_sparkline_marks_nan_and_inf() -> None:
    """NaN and ±Inf are drawn as marks, and the finite values still scale."""
    line = spark([1.0, math.nan, 2.0, math.inf, -math.inf], width=5)
    assert line == "▁×█▲▼"


def test_sparkline_all_nan() -> None:
    """Only NaNs: marks and nothing else."""
    assert spark([math.nan, math.nan], width=4) == "××××"
    assert spark([math.nan, math.nan, math.nan, math.nan], width=4, height=2) == "    \n××××"


def test_sparkline_multirow_heights() -> None:
    """A taller sparkline stacks full blocks under the top cell."""
    rows = spark([0.0, 1.0], width=2, height=3).splitlines()
    assert [row[1] for row in rows] == ["█", "█", "█"]
    assert rows[-1][0] == "▁" and rows[0][0] == " "


def test_columns_keep_spikes_when_folding() -> None:
    """Folding many values into few columns keeps each column's min and max."""
    values = [1.0] * 100
    values[37] = 50.0
    folded = columns(values, 10)
    assert len(folded) == 10
    assert max(high for _, high, _ in folded) == 50.0


def test_sparkline_in_the_panel_spans_its_width() -> None:
    """Ten values in a wide panel: the line reaches the panel's right edge."""
    state = fed(hello(), *(metrics(i, loss=1.0 / i) for i in range(1, 11)))
    lines = screen(state, width=120).splitlines()
    caption = next(i for i, line in enumerate(lines) if "min 0.1000" in line)
    bottom = lines[caption - 1]  # the sparkline's bottom row: a block in every column
    inside = bottom[2 : bottom.index("││")].rstrip()
    assert len(inside) == bottom.index("││") - 3 and " " not in inside


# -- every worker's metrics, alike in the stats and the summary -----------------


def _cells_before(line: str, value: str) -> int:
    """Terminal cells from the start of ``line`` to ``value`` in it."""
    return cell_len(line[: line.index(value)])


def stats(state: RunState, width: int = 80, height: int = 40) -> str:
    """The stats panel's lines as the dashboard draws it at ``width`` columns."""
    lines = screen(state, width=width, height=height).splitlines()
    return "\n".join(
        line[line.index("╮╭") + 1 if "╮╭" in line else line.index("││") + 1 :]
        for line in lines
        if "╮╭" in line or "││" in line
    )


def test_stats_and_summary_show_every_workers_metrics() -> None:
    """A metric only rank 1 logs (its data loading time) is in the stats and in the
    summary, with the worker it comes from; so is a pool parent's loss when its
    forked children, seen first, log only their own metric."""
    state = fed(
        hello("w0", rank=0),
        hello("w1", rank=1),
        metrics(1, "w0", loss=0.5, accuracy=0.9),
        metrics(1, "w1", loss=0.6, data_time=0.0123),
    )
    panel, report = stats(state), summary(state, ViewOptions(), NOW)
    assert re.search(r"data_time +0\.01230 rank 1", panel)
    assert "data_time: last 0.01230 (rank 1)" in report
    assert "loss: last 0.5000 (best 0.5000 at step 0)" in report
    pool = fed(
        hello("child1", rank=None, parent="parent"),
        hello("child2", rank=None, parent="parent"),
        hello("parent", rank=None),
        metrics(1, "child1", chunk_s=0.25),
        metrics(1, "child2", chunk_s=0.5),
        metrics(1, "parent", loss=0.75),
    )
    report = summary(pool, ViewOptions(), NOW)
    assert "loss: last 0.7500" in report and "chunk_s: last 0.2500" in report
    assert re.search(r"loss +0\.7500", stats(pool))


def test_accuracy_reads_alike_in_the_stats_the_summary_and_the_charts() -> None:
    """One rule: an accuracy of any phase is a percentage wherever it is shown."""
    state = fed(
        hello(),
        metrics(1, loss=0.5, accuracy=0.9, val_acc=0.9746, eval_accuracy=0.5, test_acc=97.0),
    )
    panel, report = stats(state), summary(state, ViewOptions(), NOW)
    for name, shown in (
        ("accuracy", "90.00%"),
        ("val_acc", "97.46%"),
        ("eval_accuracy", "50.00%"),
        ("test_acc", "97.00%"),
    ):
        assert re.search(rf"{name} +{re.escape(shown)}", panel), name
        assert f"{name}: last {shown}" in report, name
    assert "0.9746" not in panel + report
    grid = screen(state, ViewOptions(grid=True), width=120, height=40)
    assert "val_acc 97.46%" in grid


def test_stats_rows_for_what_is_logged_under_common_names() -> None:
    """A run logging the Hugging Face Trainer's names: loss, grad norm, the validation
    loss and accuracy, the learning rate, ahead of the bookkeeping; no accuracy row
    when no training accuracy is logged. A training accuracy and a gradient norm under
    other common spellings get their rows."""
    trainer = fed(
        hello(),
        metrics(
            1,
            loss=0.5,
            grad_norm=1.5,
            learning_rate=3e-4,
            eval_loss=0.25,
            eval_accuracy=0.875,
            eval_runtime=2.0,
        ),
    )
    labels = [line.split()[1] for line in stats(trainer).splitlines()[1:-1] if line.split()[1:]]
    assert labels[:7] == [
        "loss",
        "grad",
        "best",
        "eval_loss",
        "eval_accuracy",
        "learning_rate",
        "records",
    ]
    assert "accuracy " not in stats(trainer).replace("eval_accuracy", "")
    assert "eval_runtime" in stats(trainer)
    lightning = fed(hello(), metrics(1, train_loss_step=0.5, train_acc_step=0.25, gradient=2.0))
    panel = stats(lightning)
    assert re.search(r"loss +0\.5000", panel) and re.search(r"accuracy +25\.00%", panel)
    assert re.search(r"grad norm +2\b", panel)
    plain = stats(fed(hello(), metrics(1, loss=0.5)))
    assert "accuracy" not in plain and "grad norm" not in plain


def test_a_held_out_loss_alone_is_the_main_metric_with_its_best() -> None:
    """A run that logs only eval_loss (and a perplexity) charts eval_loss, and the
    summary gives its best value as for the training loss."""
    state = fed(
        hello(), *(metrics(i, ppl=10.0 / i, eval_loss=1.0 + (i - 3) ** 2) for i in range(1, 6))
    )
    assert "eval_loss · last 5" in screen(state)
    assert "eval_loss: last 5 (best 1 at step 2)" in summary(state, ViewOptions(), NOW)
    assert "ppl: last 2" in summary(state, ViewOptions(), NOW)


def test_names_the_dashboard_knows() -> None:
    """eval_* like val_*, learning_rate like lr, Lightning's _step/_epoch, any case."""
    assert all(is_accuracy(n) for n in ("val_acc", "eval_accuracy", "Train/Acc", "acc_epoch"))
    assert not any(is_accuracy(n) for n in ("accumulate", "eval_loss", "accuracy_top5"))
    assert all(is_loss(n) for n in ("eval_loss", "val/loss", "train_loss_step", "LOSS"))
    assert not is_loss("loss_scale")
    assert "learning_rate" in LR_NAMES and "eval_loss" in HELD_OUT_NAMES


def test_tensorboard_style_names_are_the_loss_they_mean() -> None:
    """TensorBoard's habit, the metric then the phase (``Loss/train``, ``loss/test``):
    the training loss is the main metric and the stats' loss row; a test loss is
    held out."""
    assert is_loss("Loss/train") and is_accuracy("accuracy/val")
    assert "loss/test" in HELD_OUT_NAMES and "loss/train" not in HELD_OUT_NAMES
    state = fed(hello(), metrics(1, step=0, **{"Loss/train": 0.75, "Loss/test": 0.9}))
    out = screen(state, width=100, height=30)
    assert "Loss/train" in out.splitlines()[4]  # the chart's title: the main metric
    assert re.search(r"loss\s+0\.75", out) and re.search(r"best loss\s+0\.75", out)


@pytest.mark.parametrize("width", [80, 200])
def test_stats_names_get_the_room_and_values_stay_aligned(width: int) -> None:
    """Labels are as wide as the longest name the panel has room for (cut with an
    ellipsis only past that), counted in terminal cells: values line up after CJK and
    emoji names."""
    long_name = "decoder_layer_11_attention_entropy"  # 34 characters
    state = fed(
        hello(),
        metrics(1, loss=0.5, 损失函数=1.5, **{"🔥temp": 3.0, long_name: 0.25, "lr": 3e-4}),
    )
    panel = stats(state, width)
    lines = {
        name: next(line for line in panel.splitlines() if name in line)
        for name in ("loss ", "损失函数", "🔥temp", "lr ", "decoder_layer")
    }
    starts = {
        _cells_before(lines["loss "], "0.5000"),
        _cells_before(lines["损失函数"], "1.500"),
        _cells_before(lines["🔥temp"], "3"),
        _cells_before(lines["lr "], "3.000e-04"),
        _cells_before(lines["decoder_layer"], "0.2500"),
    }
    assert len(starts) == 1, panel
    if width == 200:
        assert long_name in panel
    else:
        assert long_name not in panel and re.search(r"│ decoder_layer_\w+… 0\.2500", panel)
    assert all(cell_len(line) <= width for line in panel.splitlines())


def test_chart_title_says_what_the_chart_covers() -> None:
    """Every step logged: "N steps"; logged every 30 steps: how many points over which
    steps (not "10 steps" over steps 29-299); one point: where it is."""
    dense = fed(hello(), *(metrics(i, loss=1.0 / i) for i in range(1, 301)))
    assert "loss · 300 steps ·" in screen(dense, ViewOptions(chart=True), width=120)
    sparse = fed(hello(), *(metrics(i, step=30 * i - 1, loss=1.0 / i) for i in range(1, 11)))
    out = screen(sparse, ViewOptions(chart=True), width=120)
    assert "loss · 10 points over steps 29–299 ·" in out
    assert "10 steps" not in out
    one = fed(hello(), metrics(1, step=5, loss=1.0))
    assert "loss · 1 point at step 5" in screen(one, ViewOptions(chart=True), width=120)


def test_main_metric_of_a_worker_other_than_the_lead_is_drawn() -> None:
    """The loss only rank 1 logs (rank 0 logs other things) is drawn, saying whose it
    is, as a sparkline and as a chart."""
    state = fed(
        hello("w0", rank=0),
        hello("w1", rank=1),
        *(metrics(i, "w0", io_s=0.5) for i in range(1, 6)),
        *(metrics(i, "w1", loss=1.0 / i) for i in range(1, 6)),
    )
    assert "loss · rank 1 · last 5" in screen(state)
    out = screen(state, ViewOptions(chart=True), width=100)
    assert "loss · 5 steps · rank 1" in out and "no metrics yet" not in out


def _bar_line(state: RunState, now: float, width: int = 100) -> str:
    out = text(render(state, ViewOptions(), now), width, 24)
    return next(line for line in out.splitlines() if "Epoch" in line)


def test_progress_with_total_epochs_only() -> None:
    """The first epoch: the epoch and the step, no percent nor ETA (it said 0% at step
    300 of 350); the second: percent and ETA from the steps per epoch seen."""
    from tests.test_state import _epochs_run

    first = _epochs_run(until=300)
    line = _bar_line(first, 130.1)
    assert "Epoch 1/3" in line and "step 300" in line
    assert "progress known once an epoch ends" in line
    assert "%" not in line and "ETA" not in line
    assert "epoch 1/3 · step 300 · " in status_line(first, ViewOptions(), 130.1)
    assert "%" not in status_line(first, ViewOptions(), 130.1)
    second = _epochs_run(until=524)
    line = _bar_line(second, 152.5)
    assert "Epoch 2/3" in line and " 50%" in line and "ETA 00:52" in line and "step 524" in line
    assert "epoch 2/3 · step 524 · 50% ETA 00:52" in status_line(second, ViewOptions(), 152.5)


def test_fractional_and_past_total_epochs_are_shown_as_they_are() -> None:
    state = RunState()
    state.apply(hello(epochs=3), 100.0)
    for seq, step in enumerate(range(10, 260, 10), start=1):
        epoch = step / 100 if step % 100 else step // 100
        state.apply(metrics(seq, step=step, t=100.0 + step, epoch=epoch), 100.0 + step)  # type: ignore[arg-type]
    line = _bar_line(state, 350.0)
    assert "Epoch 2.5/3" in line and " 83%" in line and "ETA 00:50" in line
    past = fed(hello(epochs=2), metrics(1, epoch=1), metrics(2, epoch=2))
    line = _bar_line(past, NOW)
    assert "Epoch 3/2" in line and "past the total epochs" in line and "%" not in line


def test_header_says_other_runs_are_there() -> None:
    """Another run starting does not take the screen from the one shown: the header
    says it is there, and r switches."""
    state = fed(hello(run="a"), metrics(1, run="a"))
    state.settle()  # a turn of the dashboard's loop: run a is the one shown
    assert "run a" in screen(state).splitlines()[0]
    state.apply(hello(run="b"), NOW)
    state.apply(metrics(1, run="b"), NOW)
    first = screen(state).splitlines()[0]
    assert "run a" in first and "+1 other run (r)" in first


def _view_sources() -> list[tuple[str, ast.Module]]:
    folder = Path(trainmon.view.__file__).parent
    return [(path.name, ast.parse(path.read_text())) for path in sorted(folder.glob("*.py"))]


def test_the_view_imports_no_terminal_modes() -> None:
    """Raw keys and terminal modes belong to the controls: no module of the view
    imports termios or tty."""
    for name, tree in _view_sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                found = {(node.module or "").split(".")[0]}
            else:
                continue
            assert not found & {"termios", "tty"}, f"{name} imports {found}"


def _said(thing: object) -> object:
    """What a state object says: its declared fields, nested, less the private memos
    that reads keep (a series' lowest value, a history's columns)."""
    if dataclasses.is_dataclass(thing):
        return {
            f.name: _said(getattr(thing, f.name))
            for f in dataclasses.fields(thing)
            if not f.name.startswith("_") or f.name in ("_shown", "_pinned")
        }
    if isinstance(thing, dict):
        return {key: _said(value) for key, value in thing.items()}
    if isinstance(thing, (list, tuple)) or type(thing).__name__ == "deque":
        return [_said(value) for value in thing]  # type: ignore[attr-defined]
    return repr(thing)


def test_drawing_leaves_the_state_as_it_was() -> None:
    """Frames of every view, the status line and the summary read the state and change
    none of it, even which run is shown (the loop keeps that, with settle)."""
    state = fed(hello(run="a"), metrics(1, run="a"), hello(run="b"), metrics(1, run="b"))
    before = _said(state)
    for opts in (ViewOptions(), ViewOptions(run="a"), ViewOptions(chart=True, grid=True)):
        screen(state, opts)
        status_line(state, opts, NOW)
        summary(state, opts, NOW)
    assert _said(state) == before
    assert state.settle("a") is state.runs["a"] and state.chosen == "a"


def test_the_view_assigns_no_attribute_of_the_state() -> None:
    """The view reads the state and never writes it: no attribute of a name the view
    gives state objects is assigned anywhere in view/."""
    state_names = {"state", "run", "shown", "other", "worker", "lead", "series", "older"}
    for name, tree in _view_sources():
        for node in ast.walk(tree):
            targets: list[ast.expr] = []
            if isinstance(node, ast.Assign):
                targets = list(node.targets)
            elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
                targets = [node.target]
            for target in targets:
                for part in ast.walk(target):
                    if isinstance(part, ast.Attribute) and isinstance(part.value, ast.Name):
                        assert part.value.id not in state_names, (
                            f"{name}:{part.lineno} assigns {part.value.id}.{part.attr}"
                        )
