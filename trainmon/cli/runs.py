"""Kept runs on the command line: ``trainmon runs`` and ``trainmon rm``, and the
resolver every command naming a run uses (a file or folder path, else a run kept under
the data directory, by folder id, name or unique prefix)."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

import click

from trainmon.escape import escaped
from trainmon_client import store

__all__ = ["describe_run", "find_one", "run_files"]

_LISTED = 8  # an unknown or ambiguous run lists at most this many runs


def describe_run(run: store.RunFolder) -> str:
    """One line naming a run: its name, its start and its folder id."""
    return f"{escaped(run.name)}  {_when(run.started)}  ({escaped(run.id)})"


def _when(started: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started))


def _listed(runs: Sequence[store.RunFolder]) -> str:
    shown = "\n".join(f"  {describe_run(run)}" for run in runs[:_LISTED])
    more = len(runs) - _LISTED
    return shown + (f"\n  and {more} more" if more > 0 else "")


def find_one(arg: str, runs: Sequence[store.RunFolder] | None = None) -> store.RunFolder:
    """The kept run ``arg`` names: a folder id, a run name (the newest of that name) or
    a unique prefix. None found is a usage error listing a few runs there are; a prefix
    of several names is an error listing the matches."""
    every = store.scan() if runs is None else list(runs)
    try:
        found = store.find_runs(arg, every)
    except store.AmbiguousRun as exc:
        raise click.BadParameter(
            f"{escaped(arg)} names several runs:\n{_listed(exc.matches)}\n"
            "name one by more of its name, or by its folder id"
        ) from None
    if not found:
        where = escaped(store.runs_dir())
        if not every:
            raise click.BadParameter(
                f"no file or kept run {escaped(arg)}: no runs are kept in {where}"
            )
        raise click.BadParameter(
            f"no file or kept run {escaped(arg)}; runs kept in {where} "
            f"(newest first):\n{_listed(every)}"
        )
    return found[0]


def run_files(arg: str) -> tuple[str, list[str]]:
    """What to read for ``arg``: a label for it and its recordings. An existing path
    wins: a file is read as it is, a folder gives its ``.tmr`` recordings; else ``arg``
    names a kept run (see :func:`find_one`), labelled by its name (and its start, where
    other kept runs share the name)."""
    if os.path.isdir(arg):
        files = sorted(
            os.path.join(arg, name)
            for name in os.listdir(arg)
            if name.endswith(store.SUFFIX) and os.path.isfile(os.path.join(arg, name))
        )
        if not files:
            raise click.BadParameter(f"no recordings (*{store.SUFFIX}) in {escaped(arg)}")
        return arg, files
    if os.path.exists(arg):
        return arg, [arg]
    every = store.scan()
    run = find_one(arg, every)
    if not run.files:
        raise click.BadParameter(f"run {describe_run(run)} holds no recordings")
    shared = sum(1 for other in every if other.name == run.name) > 1
    label = f"{run.name} ({_when(run.started)})" if shared else run.name
    return label, list(run.files)
