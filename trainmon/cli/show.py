"""What the showing commands share: a subscriber from the endpoint options, settings from
the display options, and the dashboard (or plain lines) then the summary."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

import click

from trainmon.app import AppSettings, run_dashboard, run_plain
from trainmon.cli.output import say
from trainmon.escape import escaped, escaped_lines
from trainmon.report import summary
from trainmon.sources import RecordSource
from trainmon.sources.endpoints import EndpointError
from trainmon.sources.recording import FileFormatError, KeptRecorder, Recorder
from trainmon.sources.subscriber import Subscriber
from trainmon.state import RunState
from trainmon.view import ViewOptions
from trainmon.view.theme import ThemeError, console_for, load_theme
from trainmon_client.endpoints import LEGACY_ENDPOINT, default_endpoint, fallback_warning
from trainmon_client.security import Curve

__all__ = ["KEEP", "display_settings", "show", "subscriber"]

# ``record`` meaning "keep the runs received as runs are kept" (watch --record without
# a file): the empty name, which names no file.
KEEP = ""


@contextmanager
def subscriber(
    bind: Sequence[str],
    connect: Sequence[str],
    run: str | None,
    record: str | None = None,
    curve: Curve | None = None,
    on_record_stop: Callable[[str], None] | None = None,
    kept: list[KeptRecorder] | None = None,
) -> Iterator[Subscriber]:
    """A subscriber on the endpoints given (the default one when none), recording to
    ``record`` if given (:data:`KEEP`: as runs are kept, the recorder then appended to
    ``kept``); its warnings said on stderr."""
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
        recorder = _recorder(record, on_record_stop)
        if isinstance(recorder, KeptRecorder) and kept is not None:
            kept.append(recorder)
        if recorder is not None:
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


def _recorder(
    record: str | None, on_stop: Callable[[str], None] | None
) -> Recorder | KeptRecorder | None:
    """A recorder appending to ``record``, if given; keeping runs for :data:`KEEP`."""
    if record is None:
        return None
    if record == KEEP:
        return KeptRecorder(on_stop)
    try:
        return Recorder(record, on_stop)
    except (OSError, FileFormatError) as exc:
        raise click.ClickException(
            f"cannot record to {escaped(record)}: {escaped_lines(str(exc))}"
        ) from exc


def display_settings(
    display: dict[str, Any],
    exit_when_done: bool,
    address: str,
    run: str | None,
    *,
    connecting: bool = False,
) -> tuple[AppSettings, ViewOptions, bool]:
    """The loop's settings and the first view options from the display options, and
    whether they ask for plain lines."""
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


def show(
    source: RecordSource,
    opts: ViewOptions,
    settings: AppSettings,
    plain: bool,
    state: RunState | None = None,
) -> None:
    """The dashboard, or status lines without a terminal (or with ``plain``), until
    done; then the summary."""
    state = RunState() if state is None else state
    console = console_for(settings.theme)
    if plain or not console.is_terminal:
        if not plain:
            say(
                "trainmon: stdout is not a terminal, so no dashboard: printing a status "
                f"line every {settings.plain_interval_s:g} s (--plain to choose this)."
            )
        run_plain(source, state, opts, settings, emit=say)
    else:
        opts = run_dashboard(source, state, opts, settings, console)
    say(summary(state, opts, source.clock(), shutil.get_terminal_size().columns))
