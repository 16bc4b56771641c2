"""RunState: records in, everything the screen shows out; time stepped by hand."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trainmon.state import LOST_AFTER_S, Limits, RunState, Series
from trainmon_client.protocol import Record


def hello(
    worker: str = "w0", rank: int | None = 0, seq: int = 0, run: str = "r", **info: object
) -> Record:
    return Record(
        "hello",
        run,
        worker,
        seq,
        100.0,
        info={"host": "h", "pid": 1, **({"rank": rank} if rank is not None else {}), **info},
    )


def metrics(
    seq: int,
    worker: str = "w0",
    step: int | None = None,
    t: float | None = None,
    run: str = "r",
    epoch: int | None = None,
    **values: float,
) -> Record:
    return Record(
        "metrics",
        run,
        worker,
        seq,
        100.0 + seq if t is None else t,
        step=seq - 1 if step is None else step,
        epoch=epoch,
        metrics=values or {"loss": 1.0 / seq},
    )


def beat(seq: int, worker: str = "w0", dropped: int = 0) -> Record:
    return Record(
        "heartbeat",
        "r",
        worker,
        seq,
        100.0,
        counters={"logged": seq, "dropped": dropped, "queued": 0},
    )


def fed(*records: Record, now: float = 100.0) -> RunState:
    state = RunState()
    for record in records:
        state.apply(record, now)
    return state


def test_metrics_build_run_worker_and_series() -> None:
    """A hello and metrics make one run with one worker and a loss series."""
    state = fed(hello(), metrics(1, loss=0.5), metrics(2, loss=0.25))
    run = state.current()
    assert run is not None and run.name == "r"
    worker = run.workers["w0"]
    assert (worker.host, worker.rank, worker.step) == ("h", 0, 1)
    assert run.series("loss") is not None and run.series("loss").values(10) == [0.5, 0.25]
    assert state.records == 3


def test_repeats_are_dropped_and_counted() -> None:
    """A record seen twice (a history re-send) is applied once."""
    state = fed(hello(), metrics(1), metrics(1), hello())
    assert state.records == 2 and state.duplicates == 2
    assert state.current().series("loss").count == 1


def test_gap_is_counted_then_filled() -> None:
    """A sequence gap counts as missed until the missing records arrive."""
    state = fed(hello(), metrics(1), metrics(4))
    worker = state.current().workers["w0"]
    assert worker.missed == 2
    state.apply(metrics(3), 101.0)
    assert worker.missed == 1
    state.apply(metrics(2), 101.0)
    assert worker.missed == 0 and worker.gaps == []
    assert [s for s, _ in worker.series["loss"].points] == [0, 1, 2, 3]


def test_heartbeat_reveals_lost_tail_and_client_drops() -> None:
    """A heartbeat says which numbers were used, so lost last records count too."""
    state = fed(hello(), metrics(1), beat(5, dropped=7))
    worker = state.current().workers["w0"]
    assert worker.missed == 4 and worker.client_dropped == 7
    assert state.records == 2  # the heartbeat itself is not a record of the run


def test_status_running_stalled_lost_finished() -> None:
    """Status follows the clock: stalled without metrics, lost without anything."""
    state = fed(hello(), metrics(1))
    worker = state.current().workers["w0"]
    assert worker.status(100.5, stall_after_s=2.0) == "running"
    state.apply(beat(1), 103.0)
    assert worker.status(103.5, stall_after_s=2.0) == "stalled"
    assert worker.status(103.0 + LOST_AFTER_S + 0.1, stall_after_s=2.0) == "lost"
    state.apply(Record("bye", "r", "w0", 2, 110.0), 110.0)
    assert worker.status(500.0, stall_after_s=2.0) == "finished"
    assert state.current().finished


def test_best_loss_ignores_nan() -> None:
    """The best loss is the lowest finite one, with its step."""
    state = fed(
        hello(),
        metrics(1, loss=0.9),
        metrics(2, loss=math.nan),
        metrics(3, loss=0.3),
        metrics(4, loss=-math.inf),
        metrics(5, loss=0.4),
    )
    series = state.current().series("loss")
    assert (series.best, series.best_step, series.nonfinite) == (0.3, 2, 2)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(
                st.tuples(
                    st.integers(0, 400),
                    st.one_of(st.floats(-5, 5), st.sampled_from([math.nan, math.inf, -math.inf])),
                ),
                min_size=1,
                max_size=40,
            ),
            st.booleans(),  # asked for the best after this batch
        ),
        min_size=1,
        max_size=30,
    )
)
def test_best_is_the_lowest_finite_point_however_asked(
    batches: list[tuple[list[tuple[int, float]], bool]],
) -> None:
    """The best value is found when asked (over the window and the folded history):
    it is the lowest finite point so far, at a step where it came, whatever the order of
    steps, the batches, and how often it is asked for."""
    series = Series(window=16)
    seen: list[tuple[int, float]] = []
    for points, ask in batches:
        steps, values = [s for s, _ in points], [v for _, v in points]
        if len(points) % 2:
            series.extend(steps, values)
        else:
            for step, value in points:
                series.add(step, value)
        seen += points
        if ask:
            finite = [v for _, v in seen if math.isfinite(v)]
            assert series.best == (min(finite) if finite else math.inf)
            assert (series.best_step is None) == (not finite)
            assert not finite or (series.best_step, series.best) in seen
    assert series.nonfinite == sum(not math.isfinite(v) for _, v in seen)


def test_nan_going_straight_to_the_history_is_marked() -> None:
    """The history skips its NaN checks for a series that never had one: a batch whose
    NaN and infinity leave the window at once must still mark their buckets."""
    for one_by_one in (False, True):
        series = Series(window=16)
        series.extend(list(range(50)), [1.0] * 50)  # all finite so far
        values = [2.0] * 100
        values[3], values[7] = math.nan, math.inf
        steps = list(range(50, 150))
        if one_by_one:
            for step, value in zip(steps, values, strict=True):
                series.add(step, value)
        else:
            series.extend(steps, values)
        history = series.older.columns()
        assert sorted(mark for mark in history.marks if mark) == ["+inf", "nan"]
        unmarked = [low for low, mark in zip(history.lows, history.marks, strict=True) if not mark]
        assert set(unmarked) == {1.0, 2.0}, "an unmarked bucket has a finite minimum"
        assert series.nonfinite == 2


def test_lead_worker_is_lowest_rank() -> None:
    """Curves come from rank 0 whatever order workers appear in."""
    state = fed(hello("a", rank=3), hello("b", rank=0), hello("c", rank=None))
    assert state.current().lead.id == "b"


def test_progress_and_eta_from_total_steps() -> None:
    """With total steps, progress is steps done and ETA follows the step rate."""
    state = fed(hello(steps=100), *(metrics(i, t=100.0 + i * 0.5) for i in range(1, 11)))
    run = state.current()
    assert run.progress() == 10 / 100
    assert run.lead.steps_per_s == 2.0
    assert run.eta_s() == 90 / 2.0


def _epochs_run(
    per_epoch: int = 350,
    until: int = 300,
    pace: float = 0.1,
    total: int = 3,
    slow_from: int | None = None,
) -> RunState:
    """A worker with total_epochs only, logging every step (``pace`` s each, four times
    that from step ``slow_from``) up to step ``until``, set_epoch at each epoch's start
    (a metrics record with no values, carrying the last step done), monitor time = its
    record time."""
    state = RunState()
    state.apply(hello(epochs=total), 100.0)
    seq, t = 1, 100.0
    for step in range(until + 1):
        if step % per_epoch == 0:
            last = step - 1 if step else None
            state.apply(Record("metrics", "r", "w0", seq, t, step=last, epoch=step // per_epoch), t)
            seq += 1
        t += pace * (4 if slow_from is not None and step >= slow_from else 1)
        state.apply(metrics(seq, step=step, t=t, loss=1.0), t)
        seq += 1
    return state


def test_progress_from_epochs() -> None:
    """With total epochs only: in the first epoch the epoch and step are known, not how
    far the run is (no 0%, no ETA); once an epoch has ended the steps per epoch are
    known (from where set_epoch fell), and progress and ETA come from the steps."""
    run = _epochs_run(until=300).current()
    assert run.epoch_label() == "1/3" and run.lead.step == 300
    assert run.progress() is None and run.eta_s() is None
    run = _epochs_run(until=524).current()  # half of the second epoch done
    assert run.lead.steps_per_epoch() == 350
    assert run.epoch_label() == "2/3"
    assert run.progress() == pytest.approx(1.5 / 3)
    assert run.eta_s() == pytest.approx((1050 - 525) / 10.0)


def test_a_slower_epoch_is_not_99_percent_for_ever() -> None:
    """An epoch running four times slower than the first: progress follows its steps
    and the ETA its rate (it sat at "99% ETA 00:00" when epochs were timed)."""
    run = _epochs_run(until=600, slow_from=400).current()  # 250 of 350 steps of epoch 2
    assert run.progress() == pytest.approx((1 + 251 / 350) / 3)
    assert run.lead.steps_per_s == pytest.approx(2.5)
    assert run.eta_s() == pytest.approx((1050 - 601) / 2.5)


def test_an_epoch_longer_than_the_ones_before_has_no_eta() -> None:
    """Past the steps the epochs before had, the share is not known: no ETA (not 00:00)."""
    state = _epochs_run(per_epoch=100, until=150, total=3)
    worker = state.current().lead
    for step in range(151, 260):  # epoch 2 goes on past 100 steps
        t = 100.0 + 0.1 * (step + 1)
        state.apply(metrics(step + 10, step=step, t=t, loss=1.0), t)
    run = state.current()
    assert worker.epoch == 1 and run.eta_s() is None
    assert run.progress() == pytest.approx(2 / 3)


def test_epochs_in_the_records_and_steps_logged_every_n() -> None:
    """No set_epoch: the epoch comes with the records, logged every 50 steps; the steps
    per epoch are where the epoch changed."""
    state = RunState()
    state.apply(hello(epochs=4), 100.0)
    for seq, step in enumerate(range(0, 1000, 50), start=1):
        state.apply(metrics(seq, step=step, t=100.0 + step, epoch=step // 400), 100.0 + step)
    run = state.current()
    assert run.lead.steps_per_epoch() == 400
    assert run.progress() == pytest.approx((2 + 151 / 400) / 4)
    assert run.lead.steps_per_s == pytest.approx(1.0)


def test_fractional_epochs_are_epochs_done() -> None:
    """The Hugging Face Trainer's epoch is how many epochs are done (2.5 is halfway
    through the third): shown as such, and progress is 2.5 of 3 with no total steps;
    its whole epochs (2.0 travels as 2) are read the same way."""
    state = RunState()
    state.apply(hello(epochs=3), 100.0)
    seq = 0
    for step in range(10, 260, 10):  # 100 steps per epoch, logged every 10
        seq += 1
        epoch = step / 100 if step % 100 else step // 100
        state.apply(metrics(seq, step=step, t=100.0 + step, epoch=epoch), 100.0 + step)  # type: ignore[arg-type]
        if step == 200:
            run = state.current()
            assert run.epoch_label() == "2/3" and run.progress() == pytest.approx(2 / 3)
    run = state.current()
    assert run.epoch_label() == "2.5/3"
    assert run.progress() == pytest.approx(2.5 / 3)
    assert run.lead.steps_per_epoch() == pytest.approx(100)
    assert run.eta_s() == pytest.approx(50 / 1.0)
    state.apply(hello(seq=seq + 1, epochs=3, epochs_f=2.75), 400.0)  # totals again
    assert run.epoch_label() == "2.5/2.75"


def test_whole_epochs_shown_from_one_and_past_the_total_flagged() -> None:
    """set_epoch counts from 0 and the screen from 1; a script counting from 1 runs past
    its total ("epoch 3/2"): progress is not made up, and the alert comes once."""
    from trainmon.state import AlertWatch

    state = RunState()
    state.apply(hello(epochs=2), 100.0)
    watch = AlertWatch()
    state.apply(metrics(1, step=1, epoch=1), 100.0)
    assert state.current().epoch_label() == "2/2" and not watch.check(state, 100.0, 60.0)
    state.apply(metrics(2, step=2, epoch=2), 100.0)
    assert state.current().epoch_label() == "3/2" and state.current().past_total()
    assert state.current().progress() is None
    alerts = watch.check(state, 100.0, 60.0)
    state.apply(metrics(3, step=3, epoch=2), 101.0)
    alerts += watch.check(state, 101.0, 60.0) + watch.check(state, 102.0, 60.0)
    assert [a.kind for a in alerts] == ["epochs"]
    assert "epoch 3/2 is past the total epochs" in alerts[0].text


def test_epoch_marker_without_metrics_sets_epoch() -> None:
    """set_epoch() sends an empty metrics record that only moves the epoch."""
    state = fed(hello(), Record("metrics", "r", "w0", 1, 100.0, step=None, epoch=3, metrics={}))
    worker = state.current().workers["w0"]
    assert worker.epoch == 3 and worker.series == {}


def test_worker_limit_keeps_memory_bounded() -> None:
    """Past the worker limit new workers are counted, not tracked."""
    state = RunState(Limits(workers=3))
    for i in range(10):
        state.apply(hello(f"w{i}"), 100.0)
    run = state.current()
    assert len(run.workers) == 3 and run.untracked_workers == 7


def test_metric_and_run_limits() -> None:
    """Metric names and runs are capped too."""
    state = RunState(Limits(metrics=2, runs=2))
    state.apply(metrics(1, a=1.0, b=2.0, c=3.0), 100.0)
    assert len(state.current().workers["w0"].series) == 2
    for name in ("x", "y", "z"):
        state.apply(hello(run=name), 100.0)
    assert len(state.runs) == 2 and state.untracked_runs == 2


def test_window_is_bounded() -> None:
    """A series keeps at most the window's points however long the run."""
    state = RunState(Limits(window=50))
    for i in range(1, 500):
        state.apply(metrics(i), 100.0)
    series = state.current().series("loss")
    # the window spills its oldest 50 // 8 + 1 = 7 points at a time
    assert 50 <= len(series.points) < 57 and series.count == 499
    assert series.points[-1] == (498, 1 / 499)
    assert sum(b.count for b in series.older.in_order()) + len(series.points) == 499


def test_current_prefers_named_then_latest_run() -> None:
    """The dashboard shows --run if given, else the run heard from last."""
    state = RunState()
    state.apply(hello(run="a"), 100.0)
    state.apply(hello(run="b"), 101.0)
    assert state.current().name == "b"
    assert state.current("a").name == "a"
    assert state.current("zzz") is None


def test_reject_counts_reason() -> None:
    """Rejected messages are counted with the last reason."""
    state = RunState()
    state.reject("bad")
    state.reject("worse")
    assert (state.rejected, state.last_reject) == (2, "worse")


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 60), max_size=120))
def test_missed_matches_unseen_numbers(seqs: list[int]) -> None:
    """Whatever order numbers arrive in, missed is exactly the unseen ones below the top."""
    state = RunState()
    for seq in seqs:
        state.apply(metrics(seq, step=seq, loss=1.0), 100.0)
    if not seqs:
        return
    worker = state.current().workers["w0"]
    seen = set(seqs)
    assert worker.missed == (max(seqs) + 1) - len(seen)
    assert worker.records == len(seen)


def test_downsampled_history_keeps_extremes_and_counts() -> None:
    """Points past the window fold into a bounded set of buckets that keep min, max, last."""
    state = RunState(Limits(window=100))
    values = [math.sin(i / 50) for i in range(100_000)]
    values[31_337] = 40.0  # a spike deep in the past
    values[50_000] = math.nan
    for i, value in enumerate(values, start=1):
        state.apply(metrics(i, step=i - 1, loss=value), 100.0)
    series = state.current().series("loss")
    buckets = series.older.in_order()
    assert len(buckets) <= series.older.max_buckets
    assert sum(b.count for b in buckets) + len(series.points) == 100_000
    assert max(b.high for b in buckets) == 40.0
    assert min(b.low for b in buckets) == min(v for v in values[:-100] if v == v)
    assert any(b.mark == "nan" for b in buckets)
    kept = len(series.points)
    assert 100 <= kept < 100 + 13
    assert buckets[-1].last == values[-kept - 1]
    history = series.history()
    assert history[-1].last == values[-1] and len(history) == len(buckets) + kept


def test_downsampled_buckets_never_reshuffle() -> None:
    """Doubling the width only merges neighbours: steps once together stay together."""
    from trainmon.state import Downsampled

    down = Downsampled(max_buckets=8)
    seen: dict[int, set[int]] = {}
    for step in range(1000):
        down.add(step, float(step))
        if step in (100, 500, 999):
            seen[step] = {b.first_step for b in down.in_order()}
    widths = [b.last_step - b.first_step + 1 for b in down.in_order()]
    assert len(down.buckets) <= 8 and widths[0] == down.width
    # a boundary among old points was a boundary before: old buckets only merged
    for early, late in ((100, 500), (500, 999), (100, 999)):
        assert {start for start in seen[late] if start <= early} <= seen[early]
        assert len(seen[late]) <= 8


def test_lead_is_a_live_worker() -> None:
    """A finished process does not hide a live one of the same run."""
    state = fed(
        hello("old", rank=None), metrics(1, worker="old"), Record("bye", "r", "old", 2, 101.0)
    )
    state.apply(hello("new", rank=None), 102.0)
    state.apply(metrics(1, worker="new", loss=0.25), 102.0)
    assert state.current().lead.id == "new"


def test_lead_is_not_a_killed_process_while_its_restart_runs() -> None:
    """A process killed (no bye) and started again under the same run name: once the
    old one has been silent for the lost time while the new one is heard, the new one
    leads (progress, stats and summary follow it); if the old one speaks again, it
    leads again."""
    state = RunState()
    for worker in ("old", "new"):
        state.apply(hello(worker, rank=None), 100.0)
    state.apply(metrics(1, worker="old", step=57, loss=1.0), 100.0)
    state.apply(metrics(1, worker="new", step=3, loss=0.9), 103.0)
    run = state.current()
    assert run.lead.id == "old", "both heard within the lost time: the first seen"
    state.apply(metrics(2, worker="new", step=9, loss=0.8), 110.0)
    assert run.lead.id == "new" and run.series("loss").last == 0.8
    state.apply(metrics(2, worker="old", step=58, loss=1.1), 111.0)
    assert run.lead.id == "old"
    state.apply(metrics(3, worker="new", step=10, loss=0.7), 120.0)
    state.apply(Record("bye", "r", "new", 4, 121.0), 121.0)
    assert run.lead.id == "new", "the restart finished: still it, not the killed one"


def test_a_run_logged_every_n_steps_that_ends_is_done() -> None:
    """Steps 0, 50, ..., 950 of 1,000 and a bye: done, not ended early at 95%; a bye at
    step 500 is early (50%)."""
    for last, done in ((950, True), (500, False)):
        records = [hello(steps=1000)]
        records += [metrics(i + 1, step=step) for i, step in enumerate(range(0, last + 1, 50))]
        records.append(Record("bye", "r", "w0", len(records), 200.0))
        run = fed(*records).current()
        assert run.finished and (run.progress() == 1.0) is done, (last, run.progress())


def test_current_run_is_stable_with_two_live_runs() -> None:
    """With two runs publishing, the dashboard stays on the newer one."""
    state = RunState()
    state.apply(hello(run="alpha"), 100.0)
    state.apply(hello(run="beta"), 101.0)
    for i in range(1, 5):
        state.apply(metrics(i, run="beta"), 102.0 + i)
        state.apply(metrics(i, run="alpha"), 102.5 + i)
        assert state.current().name == "beta"


def test_finished_runs_make_room_for_new_ones() -> None:
    """At the run limit the run that finished longest ago is let go, not the new one."""
    state = RunState(Limits(runs=2))
    for index, name in enumerate(("a", "b", "c")):
        state.apply(hello(run=name), 100.0 + index)
        state.apply(Record("bye", name, "w0", 1, 100.0 + index), 100.0 + index)
    assert set(state.runs) == {"b", "c"} and state.forgotten_runs == 1


def test_restarted_process_with_the_same_id_starts_over() -> None:
    """A process restarted with the same host:pid (a container's PID 1) is not a repeat."""
    state = fed(hello(), metrics(1, loss=1.0), metrics(2, loss=1.0))
    restart = Record("hello", "r", "w0", 0, 500.0, info={"host": "h", "pid": 1, "rank": 0})
    state.apply(restart, 500.0)
    resumed = Record("metrics", "r", "w0", 1, 501.0, step=2, metrics={"loss": 0.5})
    state.apply(resumed, 501.0)  # numbered 1 again, but new: not dropped as a repeat
    worker = state.current().workers["w0"]
    assert worker.series["loss"].last == 0.5 and worker.missed == 0
    assert worker.series["loss"].count == 3


def _held(state: RunState) -> tuple[int, int]:
    """Full-resolution points (window and held back) and buckets, over every series."""
    points = buckets = 0
    for run in state.runs.values():
        for worker in run.workers.values():
            for series in worker.series.values():
                points += len(series.steps) + len(series.older.pending_steps)
                buckets += len(series.older.buckets)
    return points, buckets


def _fill(state: RunState, run: str, workers: int, metrics_each: int, records: int) -> None:
    names = {f"m{k}": 0.5 for k in range(metrics_each)}
    for w in range(workers):
        for seq in range(1, records + 1):
            state.apply(metrics(seq, worker=f"w{w}", run=run, **names), 100.0)


def test_series_share_one_point_budget() -> None:
    """As series multiply each keeps fewer points, so memory has one bound: windows
    shrink at once (their points go to the history, none lost) and new series past the
    cap are counted as untracked."""
    limits = Limits(window=1000, points=8000, series=64)
    state = RunState(limits)
    _fill(state, "a", workers=1, metrics_each=4, records=3000)
    first = state.runs["a"].workers["w0"].series["m0"]
    assert state.share == (1000, 512) and 1000 <= len(first.steps) < 1000 + 126
    _fill(state, "a", workers=3, metrics_each=4, records=3000)  # 12 series: 8000 / 16
    assert state.series_count == 12 and state.share == (500, 64)
    assert 500 <= len(first.steps) < 500 + 63, "an existing window shrank at once"
    assert sum(b.count for b in first.older.in_order()) + len(first.steps) == 3000
    assert len(first.older.buckets) <= 64
    _fill(state, "b", workers=13, metrics_each=4, records=300)  # 64 series: 8000 / 64
    assert state.series_count == 64 and state.share == (125, 64)
    points, buckets = _held(state)
    # each window holds its share and at most an eighth more; each history ≤ 64 buckets
    assert points <= 64 * (125 + 125 // 8 + 1) and buckets <= 64 * 64
    _fill(state, "b", workers=14, metrics_each=4, records=2)  # past the cap
    assert state.series_count == 64
    assert state.runs["b"].workers["w13"].untracked_metrics == 8
    assert "w13" in state.runs["b"].workers, "the worker is tracked, only its series are not"


def test_forgotten_runs_give_their_share_back() -> None:
    """When a finished run is let go its series leave the count, and the rest may keep
    more points again."""
    state = RunState(Limits(window=1000, points=8000, runs=2))
    _fill(state, "old", workers=8, metrics_each=4, records=10)  # 32 series: 250 each
    assert state.share == (250, 64)
    for w in range(8):
        state.apply(Record("bye", "old", f"w{w}", 11, 100.0), 100.0)
    _fill(state, "new", workers=1, metrics_each=1, records=10)
    _fill(state, "newer", workers=1, metrics_each=1, records=10)  # "old" makes room
    assert set(state.runs) == {"new", "newer"} and state.series_count == 2
    assert state.share == (1000, 512)
    kept = state.runs["new"].workers["w0"].series["m0"]
    assert (kept.window, kept.older.max_buckets) == (1000, 512)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 5000), min_size=1, max_size=400), st.integers(1, 64))
def test_fewer_buckets_are_as_if_folded_so(steps: list[int], buckets: int) -> None:
    """Shrinking a history's buckets merges them to exactly what folding every point
    into that many buckets gives."""
    from trainmon.state import Downsampled

    shrunk, fresh = Downsampled(max_buckets=128), Downsampled(max_buckets=buckets)
    for step in steps:
        shrunk.add(step, float(step % 7))
        fresh.add(step, float(step % 7))
    shrunk.resize(buckets)
    fresh.fold()
    assert shrunk.width == fresh.width and shrunk.in_order() == fresh.in_order()


_point_values = st.one_of(st.floats(-1e6, 1e6), st.sampled_from([math.nan, math.inf, -math.inf]))


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 3000), _point_values), min_size=1, max_size=300),
    st.integers(1, 64),
    st.sampled_from([1, 2, 8, 64]),
    st.integers(1, 100),
)
def test_history_folded_in_batches_is_as_folded_point_by_point(
    points: list[tuple[int, float]], buckets: int, min_width: int, fold_after: int
) -> None:
    """Whatever the batches (sorted runs of steps, or not) and the least bucket width,
    the history is what folding each point on its own gives: buckets aligned to a width
    that is a power of two, at least ``min_width``, and the least that fits them all."""
    from trainmon.state import Downsampled

    in_order = bool(points[0][0] % 2)  # half the time
    if in_order:
        points = sorted(points)
    batched = Downsampled(max_buckets=buckets, fold_after=fold_after, min_width=min_width)
    single = Downsampled(max_buckets=buckets, fold_after=1, min_width=min_width)
    for step, value in points:
        single.add(step, value)
    if in_order:  # as a window spills: runs of points, the lists handed over
        for start in range(0, len(points), fold_after):
            run = points[start : start + fold_after]
            batched.extend([s for s, _ in run], [v for _, v in run])
    else:
        for step, value in points:
            batched.add(step, value)
    got = batched.in_order()
    assert repr(got) == repr(single.in_order()) and batched.width == single.width
    assert batched.lowest() == single.lowest()
    width = batched.width
    assert width >= min_width and width & (width - 1) == 0 and len(got) <= buckets
    assert all(b.first_step // width == b.last_step // width for b in got)
    assert sum(b.count for b in got) == len(points)
    if width > min_width:  # half the width would not have fitted
        assert len({step // (width // 2) for step, _ in points}) > buckets


def test_a_fold_makes_a_few_buckets_not_hundreds() -> None:
    """With full windows the history's buckets are at least 128 steps wide from the
    start: one fold of 1,024 points makes at most 9 of them (with width 1 it made 512,
    and the fold cost most of the monitor's time early in a run)."""
    series = Series(10_000)
    assert (series.spill, series.older.min_width) == (1024, 128)
    steps = list(range(10_000 + 1024))
    series.extend(steps, [1.0 / (s + 1) for s in steps], sorted_steps=True, finite=True)
    series.older.fold()
    assert series.older.width == 128 and len(series.older.buckets) == 8
    assert series.best_step == 11_023 and series.count == 11_024
    small = Series(488)  # the least share (the series cap reached)
    assert (small.spill, small.older.min_width) == (62, 4)


def test_config_is_kept_as_a_few_clean_lines() -> None:
    """Whatever map a hello carries, the monitor keeps at most 64 short, printable
    ``key: text`` pairs (what the screen shows), and says how many more there were."""
    from trainmon.state import config_items

    huge = {f"k{i}": {f"j{j}": j for j in range(1000)} for i in range(1000)}
    kept, more = config_items(huge)
    assert len(kept) == 64 and more == 1000 - 64 + 999  # the other maps count as one each
    assert list(kept)[:2] == ["k0.j0", "k0.j1"]
    odd, _ = config_items(
        {"esc\x1b[2J": "red\x1b]0;title\x07", "long": "x" * 5000, "list": list(range(10_000))}
    )
    assert odd == {
        "esc [2J": "red ]0;title ",
        "long": "x" * 199 + "…",
        "list": "[0, 1, 2, 3, 4, 5, 6, 7, ...]",
    }
    deep: dict[str, object] = {"leaf": 1}
    for _ in range(50):
        deep = {"d": deep}
    assert config_items(deep) == ({"d.d.d.d": "{'d': {'d': {...}}}"}, 0)
    state = fed(hello(config=huge))
    assert len(state.current().config) == 64 and state.current().config_more == 1935


def test_a_run_keeps_the_lowest_ranks_config() -> None:
    """Ranks send the same config; the run keeps one, from the lowest rank that sent it."""
    state = fed(
        hello("w3", rank=3, config={"lr": 0.3}),
        hello("w0", rank=0, config={"lr": 0.0}),
        hello("w2", rank=2, config={"lr": 0.2}),
        hello("w1", rank=1),
    )
    run = state.current()
    assert run.config == {"lr": "0.0"} and run.config_from is run.workers["w0"]


def test_workers_are_capped_across_runs_too() -> None:
    """Many runs of many workers stop at the cap in all; a forgotten run frees its room."""
    state = RunState(Limits(workers=4, all_workers=6, runs=2))
    for run in ("a", "b"):
        for w in range(4):
            state.apply(hello(f"w{w}", run=run), 100.0)
    assert state.worker_count == 6 and len(state.runs["b"].workers) == 2
    assert state.runs["b"].untracked_workers == 2
    for w in range(4):
        state.apply(Record("bye", "a", f"w{w}", 1, 100.0), 100.0)
    state.apply(hello(run="c"), 100.0)  # at the run limit: "a" is let go
    assert set(state.runs) == {"b", "c"} and state.worker_count == 3
    assert list(state.runs["c"].workers) == ["w0"]


def test_finished_jobs_make_room_in_all_for_the_next() -> None:
    """A monitor left running across job after job: at the caps in all (workers,
    series) the run that finished longest ago is let go for the new one, as at the run
    limit; while the old one still runs the new one is counted, never left as an empty
    run that hides the live one."""
    state = RunState(Limits(all_workers=4, series=8))
    for job in range(3):
        for w in range(4):
            state.apply(metrics(1, worker=f"w{w}", run=f"job{job}", a=1.0, b=2.0), 100.0 + job)
        newest = state.runs[f"job{job}"]
        assert len(newest.workers) == 4 and newest.untracked_workers == 0
        assert all(len(w.series) == 2 for w in newest.workers.values())
        assert state.current() is newest
        for w in range(4):
            state.apply(Record("bye", f"job{job}", f"w{w}", 2, 100.0 + job), 100.0 + job)
    assert set(state.runs) == {"job2"} and state.forgotten_runs == 2
    for w in range(4):  # job2 is let go
        state.apply(metrics(1, worker=f"x{w}", run="live", a=1.0), 200.0)
    state.apply(hello("y", run="later"), 201.0)  # "live" still runs: there is no room
    assert state.current().name == "live", "the refused run does not hide the live one"
    assert state.runs["later"].untracked_workers == 1 and not state.runs["later"].workers


def test_a_restarted_rank_zero_brings_its_config() -> None:
    """A requeued job keeps its run name with new processes: the config shown is the
    live rank 0's, not the one that finished."""
    state = fed(hello("old", rank=0, config={"lr": 0.1}), Record("bye", "r", "old", 1, 100.0))
    state.apply(hello("new", rank=0, config={"lr": 0.01}), 101.0)
    run = state.current()
    assert run.config == {"lr": "0.01"} and run.config_from is run.workers["new"]


def test_unknown_kind_is_counted_and_takes_its_sequence_number() -> None:
    """A record of a kind this monitor does not know is skipped and counted, and its
    sequence number is not reported as missed."""
    state = RunState()
    for seq, kind in enumerate(["hello", "later", "metrics"]):
        extra = {"metrics": {"loss": 1.0}, "step": 1} if kind == "metrics" else {}
        state.apply(Record(kind, "r", "w", seq, 1.0, **extra), now=1.0)  # type: ignore[arg-type]
    run = state.current()
    assert run is not None and run.missed == 0
    assert state.skipped == {"later": 1}


def test_rates_come_from_the_last_ten_seconds() -> None:
    """A slowdown from 10 to 2.5 steps/s shows in full ten seconds on (the mean of the
    last 64 records said 4.5 then), and halfway after five."""
    state = RunState()
    state.apply(hello(), 0.0)
    t, seq = 0.0, 0
    for step in range(600):  # 60 s at 10 steps/s
        seq += 1
        t += 0.1
        state.apply(metrics(seq, step=step, t=t), t)
    worker = state.current().lead
    assert worker.steps_per_s == pytest.approx(10.0)
    slow_from = t
    step = 599
    while t < slow_from + 10.01:
        seq, step, t = seq + 1, step + 1, t + 0.4
        state.apply(metrics(seq, step=step, t=t), t)
        if abs(t - (slow_from + 5.2)) < 0.01:
            assert 5.0 < worker.steps_per_s < 7.0, "on its way within seconds"
    assert worker.steps_per_s == pytest.approx(2.5)


def test_records_further_apart_than_the_window_rate_from_the_last_two() -> None:
    """Logged every 50 steps at 374 ms a step, a validation pause of a minute now and
    then: the rate is the last 50 steps', not an average with the pauses in it."""
    state = RunState()
    state.apply(hello(), 0.0)
    t = 0.0
    for seq, step in enumerate(range(0, 2000, 50), start=1):
        t += 50 * 0.374 + (60.0 if seq % 10 == 5 else 0.0)
        state.apply(metrics(seq, step=step, t=t), t)
    assert 1000 / state.current().lead.steps_per_s == pytest.approx(374)


@pytest.mark.parametrize("shuffled", [False, True])
def test_rate_points_from_a_batch_are_as_one_by_one(shuffled: bool) -> None:
    """Many records a quarter second (the batch path keeps the last of each by
    bisection), and times that go back (one by one): the same points either way."""
    import random

    from trainmon_client.protocol import Columns

    times = [1000.0 + 0.003 * i for i in range(2000)]
    if shuffled:
        random.Random(5).shuffle(times)
    steps: list[int | None] = list(range(2000))
    batch = Columns("r", "w0", 1, times, steps, [0] * 2000, {"loss": [1.0] * 2000})
    by_columns, by_records = RunState(), RunState()
    by_columns.apply_columns(batch, 2000.0)
    for record in batch.records():
        by_records.apply(record, 2000.0)
    points = list(by_columns.runs["r"].workers["w0"].rate_points)
    assert points == list(by_records.runs["r"].workers["w0"].rate_points)
    assert len(points) == (64 if shuffled else 24)  # six seconds


def _logs(state: RunState, run: str, seq: int, now: float, worker: str = "w0") -> None:
    state.apply(metrics(seq, worker=worker, run=run, t=now), now)


def test_the_run_watched_stays_shown_while_it_is_live() -> None:
    """A run started later (or another user's script on the same port) does not take
    the view from the run being watched, nor keep it once it has died; when the
    watched run ends and another is live, the view moves to that one. (settle() is a
    turn of the dashboard's loop, which keeps the run shown.)"""
    state = RunState()
    state.apply(hello(run="mine"), 100.0)
    _logs(state, "mine", 1, 100.0)
    assert state.settle().name == "mine"
    state.apply(hello(run="theirs"), 101.0)
    for seq in range(1, 5):  # both log
        _logs(state, "theirs", seq, 101.0 + seq)
        _logs(state, "mine", seq + 1, 101.5 + seq)
        assert state.settle().name == "mine"
    for seq in range(6, 20):  # theirs died (no bye); mine goes on
        _logs(state, "mine", seq, 100.0 + seq)
        assert state.settle().name == "mine"
    state.apply(Record("bye", "mine", "w0", 20, 120.0), 120.0)
    assert state.settle().name == "mine", "ended, but no other is live"
    state.apply(hello(run="next"), 121.0)
    _logs(state, "next", 1, 121.0)
    assert state.settle().name == "next", "the watched run ended and another is live"


def test_a_watched_run_that_is_lost_gives_way_to_a_live_one() -> None:
    """The newer run was shown (it came first to the screen) and was killed while the
    other went on logging: once it is lost the live one is shown."""
    state = RunState()
    state.apply(hello(run="old"), 100.0)
    state.apply(hello(run="new"), 100.5)
    assert state.current().name == "new"
    for seq in range(1, 12):
        _logs(state, "old", seq, 100.0 + seq)
        expected = "new" if 100.0 + seq - 100.5 <= LOST_AFTER_S else "old"
        assert state.current().name == expected, seq


def test_a_chosen_run_that_had_ended_stays_until_chosen_otherwise() -> None:
    state = RunState()
    state.apply(hello(run="done"), 100.0)
    state.apply(Record("bye", "done", "w0", 1, 100.0), 100.0)
    state.apply(hello(run="live"), 101.0)
    _logs(state, "live", 1, 101.0)
    assert state.current().name == "live"
    state.choose("done")
    for seq in range(2, 6):
        _logs(state, "live", seq, 100.0 + seq)
        assert state.current().name == "done"
    state.choose("live")
    assert state.current().name == "live"


def test_forked_children_never_lead_and_end_with_their_parent() -> None:
    """Pool processes forked from the training process (hello ``parent``), seen first
    and with the same rank, do not become the lead; silent after the parent's bye
    they have finished with it, so the run is finished, not lost."""
    state = RunState()
    for child in ("c1", "c2"):
        state.apply(hello(child, rank=0, parent="main"), 100.0)
        state.apply(metrics(1, worker=child, step=0, rows=5.0), 100.0)
    state.apply(hello("main", rank=0), 100.5)
    state.apply(metrics(1, worker="main", step=0, loss=2.0), 100.5)
    run = state.current()
    assert run.lead.id == "main" and run.series("loss").last == 2.0
    state.apply(Record("bye", "r", "main", 2, 103.0), 103.0)
    assert run.lead.id == "main" and run.finished
    assert run.status(103.5, 60.0) == "running", "the children are still heard"
    assert run.status(120.0, 60.0) == "finished"
    assert {w.status(120.0, 60.0) for w in run.workers.values()} == {"finished"}


def test_children_of_a_live_parent_that_vanish_are_lost() -> None:
    state = RunState()
    state.apply(hello("main", rank=0), 100.0)
    state.apply(hello("c1", rank=0, parent="main"), 100.0)
    run = state.current()
    state.apply(metrics(1, worker="main"), 110.0)
    assert run.workers["c1"].status(110.0, 60.0) == "lost" and not run.finished


def test_the_lead_logs_the_main_metric() -> None:
    """Two processes of rank 0 (an older client, no parent said): the one that logs the
    loss leads, whichever came first."""
    state = RunState()
    state.apply(hello("helper", rank=0), 100.0)
    state.apply(metrics(1, worker="helper", step=0, data_time=0.1), 100.0)
    state.apply(hello("trainer", rank=0), 101.0)
    state.apply(metrics(1, worker="trainer", step=0, loss=1.5), 101.0)
    assert state.current().lead.id == "trainer"
