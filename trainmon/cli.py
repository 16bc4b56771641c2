"""The ``trainmon`` command: thin click functions that wire the parts together."""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from typing import Any, TypeVar

import click
from rich.console import Console

from trainmon.app import AppSettings, DoneWatch, lost_workers, run_dashboard, run_plain
from trainmon.escape import escaped, escaped_lines
from trainmon.export import (
    FORMATS,
    dashboard_picture,
    is_printed,
    record_json,
    write_csv,
    write_jsonl,
)
from trainmon.ingest import EndpointError, RecordSource, Subscriber, host_port
from trainmon.keys import quit_on_signals
from trainmon.recording import FileFormatError, Loaded, Recorder, ReplaySource, load
from trainmon.relay import Relay
from trainmon.report import summary
from trainmon.state import RunState
from trainmon.view import ViewOptions, render
from trainmon.view.theme import ThemeError, console_for, load_theme
from trainmon_client.endpoints import (
    LEGACY_ENDPOINT,
    default_endpoint,
    endpoint_problem,
    fallback_warning,
)
from trainmon_client.protocol import Columns, Record
from trainmon_client.security import Curve, check_key_name, create_keypair

__all__ = ["main"]

_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
F = TypeVar("F", bound=Callable[..., Any])
_RUNS_LISTED = 20  # an unknown --run lists at most this many of the runs there are


def _say(text: str) -> None:
    """Print ``text`` on the standard output; a failure to (a full disk) is an error."""
    try:
        click.echo(text)
    except OSError as exc:
        raise _stdout_failed(exc) from None


def _stdout_failed(exc: OSError) -> Exception:
    """What to raise when writing the standard output failed: a closed pipe (`| head`)
    as it is, for click (and tail) to end quietly; anything else a one-line error."""
    if exc.errno == errno.EPIPE:
        return exc
    # The interpreter flushes the standard output again at exit: that must not fail
    # (with a traceback of its own) too.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass  # not a file descriptor (a test's capture): nothing flushes it at exit
    return click.ClickException(f"cannot write to standard output: {exc.strerror or exc}")


class _Finite(click.FloatRange):
    """A number option: finite (nan and inf would switch a timer off for good), and at
    least ``min``."""

    name = "finite number"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


@click.group(context_settings=_CONTEXT)
@click.version_option(package_name="trainmon", prog_name="trainmon")
def main() -> None:
    """Watch model training live, from another terminal or another machine.

    A training script publishes with the trainmon-client library
    (Monitor().log(loss=...)); `trainmon watch` shows the run. The monitor is a
    separate process: quitting or freezing it never touches training.
    """


def _checked_endpoints(
    ctx: click.Context, param: click.Parameter, value: Sequence[str] | str | None
) -> Any:
    """An endpoint option's values, each of a form ZeroMQ can use (it takes many others
    without a word and never delivers): else a usage error, exit 2."""
    for endpoint in (value,) if isinstance(value, str) else value or ():
        problem = endpoint_problem(endpoint)
        if problem:
            raise click.BadParameter(problem, ctx=ctx, param=param)
    return value


def _endpoint_options(func: F) -> F:
    options = [
        click.option(
            "--bind",
            "bind",
            multiple=True,
            metavar="ENDPOINT",
            envvar="TRAINMON_BIND",
            show_envvar=True,
            callback=_checked_endpoints,
            help="Listen here for workers to connect (repeatable). [default, unless "
            "--connect is given: a socket only you can reach, "
            "ipc:///tmp/trainmon-UID/monitor, where Monitor() publishes by default "
            "($TRAINMON_SOCKET_DIR moves it); where none can be made, "
            f"{LEGACY_ENDPOINT}, said once]",
        ),
        click.option(
            "--connect",
            "connect",
            multiple=True,
            metavar="ENDPOINT",
            envvar="TRAINMON_CONNECT",
            show_envvar=True,
            callback=_checked_endpoints,
            help="Connect to training that binds, e.g. tcp://gpu-box:5556 or "
            "tcp://[::1]:5556 (repeatable).",
        ),
        click.option(
            "--run",
            "run",
            metavar="NAME",
            envvar="TRAINMON_RUN_FILTER",
            show_envvar=True,
            help="Show only the run named NAME (default: every run that publishes).",
        ),
        click.option(
            "--exit-when-done",
            is_flag=True,
            help=(
                "Exit once every worker seen has ended: said bye, or been lost (silent "
                "for 5 s: killed or crashed), and none has come back for 2 s more; the "
                "summary (tail: a line on stderr) names the lost ones."
            ),
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _curve_options(func: F) -> F:
    return _curve_option_list(func, server=True)


def _relay_curve_options(func: F) -> F:
    """A relay binds both its sides: no --curve-server."""
    return _curve_option_list(func, server=False)


def _curve_option_list(func: F, *, server: bool) -> F:
    options = [
        _key_option(
            "--curve-secret",
            "TRAINMON_CURVE_SECRET",
            "Encrypt with CURVE: this side's .key_secret file (trainmon keygen).",
        ),
        _key_option(
            "--curve-allow",
            "TRAINMON_CURVE_ALLOW",
            "With --bind: a directory of the public .key files allowed in."
            if server
            else "A directory of the public .key files allowed in (workers and monitors).",
            directory=True,
        ),
    ]
    if server:
        options.insert(
            1,
            _key_option(
                "--curve-server",
                "TRAINMON_CURVE_SERVER",
                "With --connect: the public .key file of the side that binds.",
            ),
        )
    for option in reversed(options):
        func = option(func)
    return func


def _key_option(name: str, envvar: str, help: str, *, directory: bool = False) -> Callable[[F], F]:
    """An option naming an existing key file (or directory of them)."""
    return click.option(
        name,
        metavar="DIR" if directory else "FILE",
        envvar=envvar,
        show_envvar=True,
        type=click.Path(file_okay=not directory, dir_okay=directory, exists=True),
        help=help,
    )


def _reachable(endpoint: str) -> str:
    """A bound endpoint as others would connect to it: this machine's name for the
    any-interface address (no one can connect to 0.0.0.0)."""
    host, port = host_port(endpoint)
    if host in ("0.0.0.0", "*", "::"):
        return f"tcp://{socket.gethostname()}:{port}"
    return endpoint


def _curve(secret: str | None, server: str | None, allow: str | None) -> Curve | None:
    if not (secret or server or allow):
        return None
    if not secret:
        raise click.UsageError("--curve-server and --curve-allow need --curve-secret")
    return Curve(secret, server, allow)


def _display_options(func: F) -> F:
    options = [
        click.option(
            "--history",
            default=100,
            show_default=True,
            metavar="N",
            type=click.IntRange(2, 100_000),
            help="Values of the main metric in the sparkline.",
        ),
        click.option(
            "--refresh-ms",
            default=100,
            show_default=True,
            metavar="MS",
            type=click.IntRange(10, 60_000),
            help="Redraw the screen every MS milliseconds.",
        ),
        click.option(
            "--stall-after",
            default=60.0,
            show_default=True,
            metavar="SECONDS",
            type=_Finite(0.5),
            help="Call a worker stalled after SECONDS without new metrics.",
        ),
        click.option(
            "--no-interactive",
            is_flag=True,
            help="Do not read keys (? lists them); quit with Ctrl-C.",
        ),
        click.option(
            "--plain",
            is_flag=True,
            help="No dashboard: status lines instead (automatic without a terminal).",
        ),
        click.option(
            "--plain-interval",
            default=5.0,
            show_default=True,
            metavar="SECONDS",
            type=_Finite(0.1),
            help="Seconds between status lines in plain mode.",
        ),
        click.option(
            "--theme",
            default="dark",
            show_default=True,
            envvar="TRAINMON_THEME",
            type=click.Choice(["dark", "light", "mono"]),
            help="Colours: dark or light terminal backgrounds, or mono (none). NO_COLOR "
            "in the environment also turns colour off. [env: TRAINMON_THEME]",
        ),
        click.option(
            "--theme-file",
            metavar="FILE",
            envvar="TRAINMON_THEME_FILE",
            type=click.Path(dir_okay=False),
            help="A TOML file of style names to colours over the theme, e.g. "
            'line = "bright_green" (see the README). [env: TRAINMON_THEME_FILE]',
        ),
        click.option(
            "--bell",
            is_flag=True,
            help="Ring the terminal bell once for each new alert (NaN, loss spike, "
            "stalled or lost worker, missed records, an alert from training).",
        ),
        click.option(
            "--export-dir",
            default=".",
            show_default=True,
            metavar="DIR",
            type=click.Path(file_okay=False, exists=True),
            help="Where the e key saves SVG pictures of the screen.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@contextmanager
def _subscriber(
    bind: Sequence[str],
    connect: Sequence[str],
    run: str | None,
    record: str | None = None,
    curve: Curve | None = None,
    on_record_stop: Callable[[str], None] | None = None,
) -> Iterator[Subscriber]:
    notes: list[str] = []
    old_default: str | None = None
    if not bind and not connect:
        default = default_endpoint()
        bind = (default.endpoint,)
        if default.note:
            notes.append(fallback_warning(default, "listening on"))
        else:  # an older client still publishes to the old default: say so if one does
            old_default = LEGACY_ENDPOINT
    with ExitStack() as stack:
        recorder = None
        if record is not None:
            try:
                recorder = Recorder(record, on_record_stop)
            except (OSError, FileFormatError) as exc:
                raise click.ClickException(
                    f"cannot record to {escaped(record)}: {escaped_lines(str(exc))}"
                ) from exc
            stack.callback(recorder.close)
        try:
            source = Subscriber(
                bind,
                connect,
                run=run,
                curve=curve,
                on_payload=recorder.write if recorder else None,
                old_default=old_default,
            )
        except EndpointError as exc:
            raise click.ClickException(escaped_lines(str(exc))) from exc
        stack.callback(source.close)
        source.warnings[:0] = notes
        for warning in source.warnings:
            click.echo(f"trainmon: {escaped_lines(warning)}", err=True)
        yield source


@main.command(context_settings=_CONTEXT)
@_endpoint_options
@_display_options
@click.option(
    "--record",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="Also append everything received to FILE (see `trainmon replay`).",
)
@_curve_options
def watch(
    bind: tuple[str, ...],
    connect: tuple[str, ...],
    run: str | None,
    exit_when_done: bool,
    record: str | None,
    curve_secret: str | None,
    curve_server: str | None,
    curve_allow: str | None,
    **display: Any,
) -> None:
    """Show a live dashboard of the training runs publishing to this monitor.

    By default it listens on a socket only you can reach, where Monitor() in a
    training script of yours connects by default. To watch training on another
    machine that binds, use --connect tcp://HOST:PORT. Keys: ? lists them all; q quits, space pauses
    the view, c charts the whole run, g shows every metric, + - zoom, arrows pan,
    m picks the main metric, w the worker, r the run, e saves an SVG picture.
    """
    curve = _curve(curve_secret, curve_server, curve_allow)
    state = RunState()  # (a recording that stops says so on screen: its note)
    with _subscriber(bind, connect, run, record, curve, state.note_recording) as source:
        settings, opts, plain = _display(
            display, exit_when_done, source.address, run, connecting=bool(connect and not bind)
        )
        opts = replace(opts, warnings=tuple(source.warnings))
        _show(source, opts, settings, plain, state)
    if record is not None:  # (after the recording is closed: its last words are in)
        if state.recording_note:
            click.echo(f"trainmon: {escaped_lines(state.recording_note)}", err=True)
        else:
            _say(f"recorded to {escaped(record)}")


def _display(
    display: dict[str, Any],
    exit_when_done: bool,
    address: str,
    run: str | None,
    *,
    connecting: bool = False,
) -> tuple[AppSettings, ViewOptions, bool]:
    interactive = not display["no_interactive"]
    try:
        theme = load_theme(display["theme"], display["theme_file"])
    except ThemeError as exc:
        raise click.ClickException(escaped_lines(str(exc))) from exc
    settings = AppSettings(
        refresh_s=display["refresh_ms"] / 1000,
        interactive=interactive,
        exit_when_done=exit_when_done,
        plain_interval_s=display["plain_interval"],
        export_dir=display["export_dir"],
        theme=theme,
        bell=display["bell"],
    )
    opts = ViewOptions(
        history=display["history"],
        run=run,
        address=address,
        connecting=connecting,
        stall_after_s=display["stall_after"],
        interactive=interactive,
    )
    return settings, opts, display["plain"]


def _show(
    source: RecordSource,
    opts: ViewOptions,
    settings: AppSettings,
    plain: bool,
    state: RunState | None = None,
) -> None:
    state = RunState() if state is None else state
    console = console_for(settings.theme)
    if plain or not console.is_terminal:
        if not plain:
            _say(
                "trainmon: stdout is not a terminal, so no dashboard: printing a status "
                f"line every {settings.plain_interval_s:g} s (--plain to choose this)."
            )
        run_plain(source, state, opts, settings, emit=_say)
    else:
        opts = run_dashboard(source, state, opts, settings, console)
    _say(summary(state, opts, source.clock(), shutil.get_terminal_size().columns))


@main.command(context_settings=_CONTEXT)
@_endpoint_options
@_curve_options
def tail(
    bind: tuple[str, ...],
    connect: tuple[str, ...],
    run: str | None,
    exit_when_done: bool,
    curve_secret: str | None,
    curve_server: str | None,
    curve_allow: str | None,
) -> None:
    """Print each metrics record received as one JSON object per line.

    Keys: run, worker, seq, step, epoch, t, metrics. For scripts and jq, e.g.
    `trainmon tail | jq .metrics.loss`. NaN and infinities are written as
    NaN and Infinity, as Python's json module reads them.
    """
    with _subscriber(
        bind, connect, run, None, _curve(curve_secret, curve_server, curve_allow)
    ) as source:
        sink = _JsonLines(RunState())
        done = DoneWatch()
        with quit_on_signals() as stop:
            while not stop:
                source.drain(sink, budget_s=0.1)
                if exit_when_done and done.check(sink.state, source.clock(), 2.0):
                    for lost in lost_workers(sink.state, source.clock()):
                        click.echo(f"trainmon: {lost} lost without a bye", err=True)
                    break


class _JsonLines:
    """A sink that keeps state (to drop repeats, to know when all is done) and prints."""

    def __init__(self, state: RunState) -> None:
        self.state = state

    def apply(self, record: Record, now: float) -> bool:
        if not self.state.apply(record, now):
            return False
        if is_printed(record):  # the same records as `export --format jsonl` writes
            try:
                _say(json.dumps(record_json(record)))
            except BrokenPipeError:  # `trainmon tail | head`: the reader has gone
                sys.stderr.close()
                raise SystemExit(0) from None
        return True

    def apply_columns(self, columns: Columns, now: float) -> int:
        return sum(self.apply(record, now) for record in columns.records())

    def reject(self, reason: str, peer: str = "") -> None:
        self.state.reject(reason, peer)
        click.echo(f"trainmon: rejected a message: {reason}", err=True)

    def refuse(self, reason: str, count: int) -> None:
        self.state.refuse(reason, count)
        click.echo(f"trainmon: {reason}", err=True)

    def note_link(self, short: str, note: str) -> None:
        self.state.note_link(short, note)
        click.echo(f"trainmon: {note or 'connected'}", err=True)


def _load(files: Sequence[str]) -> Loaded:
    try:
        loaded = load(files)
    except FileFormatError as exc:
        raise click.ClickException(escaped_lines(str(exc))) from exc
    except OSError as exc:
        where = escaped(exc.filename) if exc.filename else _names(files)
        raise click.ClickException(f"cannot read {where}: {exc.strerror}") from exc
    if not loaded.records:
        raise click.ClickException(f"no records in {_names(files)}\n{loaded.describe()}")
    return loaded


def _names(files: Sequence[str]) -> str:
    """File names as they are safe to print, in one line."""
    return ", ".join(map(escaped, files))


def _of_run(loaded: Loaded, run: str | None, files: Sequence[str]) -> list[Record]:
    """The records of ``run`` (all when None); a run not in the files is a usage error
    that lists the runs they hold."""
    if run is None:
        return loaded.records
    records = [record for record in loaded.records if record.run == run]
    if not records:
        runs = sorted({record.run for record in loaded.records})
        shown = ", ".join(runs[:_RUNS_LISTED]) + (
            f" and {len(runs) - _RUNS_LISTED} more" if len(runs) > _RUNS_LISTED else ""
        )
        raise click.BadParameter(
            f"no run {run!r} in {_names(files)}; its runs: {shown}", param_hint="'--run'"
        )
    return records


@main.command(context_settings=_CONTEXT)
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, exists=True))
@_display_options
@click.option(
    "--speed",
    type=_Finite(min=0.01),
    metavar="X",
    help="Play X times faster than real time [default: whatever plays it in ~10 s].",
)
@click.option("--instant", is_flag=True, help="Show the end state at once.")
@click.option("--run", "run", metavar="NAME", help="Show only the run named NAME.")
def replay(
    files: tuple[str, ...], speed: float | None, instant: bool, run: str | None, **display: Any
) -> None:
    """Show recorded runs (FILES from watch --record or Monitor(record_to=...)).

    Several files play together, as several workers or runs. Damaged frames are
    skipped and counted. Keys as in watch: space pauses the playback, q quits.
    With --plain, prints the final summary.
    """
    loaded = _load(files)
    records = _of_run(loaded, run, files)
    settings, opts, plain = _display(display, False, _names(files), run)
    if plain or not Console().is_terminal:
        state = RunState()
        for record in records:
            state.apply(record, record.time)
        _say(summary(state, opts, records[-1].time, shutil.get_terminal_size().columns))
    else:
        source = ReplaySource(records, speed=speed, instant=instant)
        # replace(), not a new AppSettings: every option the user gave is kept
        settings = replace(settings, finished_notice="end of recording · q quits")
        _show(source, opts, settings, plain=False)
    _say(loaded.describe())


@main.command(context_settings=_CONTEXT)
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, exists=True))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    required=True,
    help="csv/jsonl: every metric value; html/svg: a picture of the final dashboard.",
)
@click.option(
    "-o",
    "--output",
    metavar="OUT",
    type=click.Path(dir_okay=False),
    help="Write here [default: standard output].",
)
@click.option(
    "--width",
    default=120,
    show_default=True,
    type=click.IntRange(40, 400),
    help="Picture width in columns (html/svg).",
)
@click.option(
    "--height",
    default=40,
    show_default=True,
    type=click.IntRange(12, 200),
    help="Picture height in rows (html/svg).",
)
@click.option(
    "--run", "run", metavar="NAME", help="Only this run's records (csv, jsonl) or picture."
)
def export(
    files: tuple[str, ...], fmt: str, output: str | None, width: int, height: int, run: str | None
) -> None:
    """Export recorded runs: every metric value, or the dashboard at the end.

    csv has one row per metric value (run, worker, seq, step, epoch, time, metric,
    value); jsonl one object per record with metric values, the lines `trainmon
    tail` prints.
    """
    loaded = _load(files)
    records = _of_run(loaded, run, files)
    to_file = output not in (None, "-")
    name = escaped(output) if output and to_file else "standard output"
    if output and to_file and any(_same_file(output, path) for path in files):
        raise click.BadParameter(f"{name} is one of the recordings read", param_hint="'-o'")
    try:
        out = click.open_file(output or "-", "w", encoding="utf-8", lazy=False)
    except OSError as exc:
        raise click.ClickException(f"cannot write {name}: {exc.strerror}") from exc
    try:
        try:
            what = _write_export(records, fmt, out, width, height, run, files)
            out.flush()  # here, not at exit: a full disk is said as an error
        finally:
            if to_file:
                out.close()
    except OSError as exc:
        if not to_file:
            raise _stdout_failed(exc) from None
        if exc.errno == errno.EPIPE:  # -o /dev/stdout | head: click ends quietly
            raise
        raise click.ClickException(f"cannot write {name}: {exc.strerror or exc}") from None
    if to_file:
        click.echo(f"wrote {what} to {name}", err=True)
    if loaded.damaged or any(r.truncated_tail for r in loaded.reports.values()):
        click.echo(loaded.describe(), err=True)


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False  # one does not exist (yet)


def _write_export(
    records: list[Record],
    fmt: str,
    out: Any,
    width: int,
    height: int,
    run: str | None,
    files: Sequence[str],
) -> str:
    """Write ``records`` to ``out`` in ``fmt``; what was written, in words."""
    if fmt == "csv":
        return f"{write_csv(records, out)} metric values"
    if fmt == "jsonl":
        return f"{write_jsonl(records, out)} records"
    state = RunState()
    for record in records:
        state.apply(record, record.time)
    opts = ViewOptions(run=run, interactive=False, address=_names(files))
    frame = render(state, opts, records[-1].time)
    title = f"trainmon · {escaped(files[0])}"
    out.write(dashboard_picture(frame, fmt, width, height, title=title))
    return f"a {width}x{height} picture"


@main.command(context_settings=_CONTEXT)
@click.option(
    "--workers",
    default=4,
    show_default=True,
    type=click.IntRange(1, 64),
    metavar="N",
    help="Simulated workers.",
)
@click.option(
    "--epochs",
    default=10,
    show_default=True,
    type=click.IntRange(1, 1000),
    metavar="N",
    help="Epochs each worker runs (about 2.5 s each).",
)
@click.option(
    "--bind",
    default="tcp://127.0.0.1:*",
    show_default=True,
    metavar="ENDPOINT",
    callback=_checked_endpoints,
    help="Where the demo's monitor listens (* picks a free port).",
)
@click.option("--plain", is_flag=True, help="Status lines instead of the dashboard.")
def demo(workers: int, epochs: int, bind: str, plain: bool) -> None:
    """Show the dashboard with simulated workers: about 30 s, or press q.

    Starts the monitor and WORKERS processes that publish through the real
    client: loss falls with noise, accuracy rises, the gradient norm varies.
    """
    with _subscriber((bind,), (), None) as source:
        endpoint = source.endpoints[0]
        run = f"demo-{uuid.uuid4().hex[:6]}"
        procs = [
            _start_demo_worker(endpoint, run, rank, workers, epochs) for rank in range(workers)
        ]
        try:
            settings = AppSettings(
                exit_when_done=True, max_duration_s=epochs * 3.5 + 30, plain_interval_s=2.0
            )
            _show(source, ViewOptions(address=endpoint), settings, plain)
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.terminate()
            for proc in procs:
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()


def _start_demo_worker(
    endpoint: str, run: str, rank: int, world: int, epochs: int
) -> subprocess.Popen[bytes]:
    env = dict(os.environ, RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trainmon.demo",
            "--endpoint",
            endpoint,
            "--run",
            run,
            "--rank",
            str(rank),
            "--world",
            str(world),
            "--epochs",
            str(epochs),
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@main.command(context_settings=_CONTEXT)
@click.option(
    "--sub-bind",
    multiple=True,
    metavar="ENDPOINT",
    required=True,
    envvar="TRAINMON_RELAY_SUB",
    show_envvar=True,
    callback=_checked_endpoints,
    help="Workers connect here: Monitor(ENDPOINT) (repeatable).",
)
@click.option(
    "--pub-bind",
    multiple=True,
    metavar="ENDPOINT",
    required=True,
    envvar="TRAINMON_RELAY_PUB",
    show_envvar=True,
    callback=_checked_endpoints,
    help="Monitors connect here: trainmon watch --connect ENDPOINT (repeatable).",
)
@_relay_curve_options
def relay(
    sub_bind: tuple[str, ...],
    pub_bind: tuple[str, ...],
    curve_secret: str | None,
    curve_allow: str | None,
) -> None:
    """Forward many workers to any number of monitors (ZeroMQ's XSUB/XPUB proxy).

    One relay per job or per node: workers connect to --sub-bind, monitors to
    --pub-bind, from anywhere that can reach them (no defaults: a relay is for
    reaching beyond your own private socket; on tcp beyond loopback, use CURVE).
    A monitor attaching later still gets each worker's history. Runs until Ctrl-C
    or SIGTERM.
    """
    try:
        forwarder = Relay(sub_bind, pub_bind, _curve(curve_secret, None, curve_allow))
    except EndpointError as exc:
        raise click.ClickException(escaped_lines(str(exc))) from exc
    # Signals are caught before saying where to connect: a SIGTERM right after that
    # line must still stop the relay cleanly.
    try:
        with quit_on_signals() as stop:
            for warning in forwarder.warnings:
                click.echo(f"trainmon: {escaped_lines(warning)}", err=True)
            workers = _names(list(map(_reachable, forwarder.endpoints["workers"])))
            monitors = _names(list(map(_reachable, forwarder.endpoints["monitors"])))
            click.echo(f"trainmon relay: workers connect to {workers}; monitors to {monitors}")
            while not stop:
                time.sleep(0.1)
    finally:
        forwarder.close()
    refused = forwarder.refused()
    click.echo("trainmon relay: stopped" + (f"; {refused} handshakes refused" if refused else ""))


@main.command(context_settings=_CONTEXT)
@click.argument("directory", type=click.Path(file_okay=False))
@click.option(
    "--name",
    "names",
    multiple=True,
    metavar="NAME",
    help="Key pairs to write [default: server and client].",
)
@click.option("--force", is_flag=True, help="Replace key files that already exist.")
def keygen(directory: str, names: tuple[str, ...], force: bool) -> None:
    """Write CURVE key pairs into DIRECTORY: NAME.key (public), NAME.key_secret (0600).

    Give the binding side (monitor, relay or training) its .key_secret and a
    directory holding the .key files it allows; give each connecting side its own
    .key_secret and the binding side's .key.
    """
    for name in names or ("server", "client"):
        try:
            check_key_name(name)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--name") from None
        existing = [
            p
            for p in (f"{name}.key", f"{name}.key_secret")
            if os.path.exists(os.path.join(directory, p))
        ]
        if existing and not force:
            raise click.ClickException(
                f"{escaped(os.path.join(directory, existing[0]))} exists; new keys would lock out "
                "everyone holding the old ones. Use --force to replace them."
            )
        try:
            public, secret = create_keypair(directory, name)
        except OSError as exc:
            raise click.ClickException(
                f"cannot write keys in {escaped(directory)}: {exc.strerror}"
            ) from exc
        _say(f"wrote {escaped(public)} (public) and {escaped(secret)} (secret, mode 0600)")
