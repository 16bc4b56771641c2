"""What a worker says of itself in its hello: the info map (its identity, totals and
config), and the updates set_totals() and set_config() hand to the I/O thread."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, Final

from trainmon_client.identity import Identity
from trainmon_client.redact import MASK, hidden
from trainmon_client.text import MAX_NAME_CHARS

__all__ = ["InfoUpdates", "hello_info", "plain"]

_CONFIG_TEXT_CHARS: Final = 1000  # config text kept per value (the monitor shows 200)


def hello_info(ident: Identity, config: Mapping[str, Any], **totals: Any) -> dict[str, Any]:
    """The hello's info: host and pid, then each of rank, world and local rank from
    ``ident`` and each of ``totals`` (epochs, epochs_f, steps, port, local_world,
    parent, in that order) that is known, and the config as plain values if any."""
    info: dict[str, Any] = {"host": ident.host, "pid": ident.pid}
    known = {"rank": ident.rank, "world": ident.world, "local_rank": ident.local_rank}
    for key, value in {**known, **totals}.items():
        if value is not None:
            info[key] = value
    if config:
        info["config"] = plain(config)
    return info


def plain(value: Any, depth: int = 0) -> Any:
    """A msgpack-safe copy of config values: nested plain data, else their text, with
    credentials' values masked (see redact.py)."""
    if isinstance(value, str):
        return value[:_CONFIG_TEXT_CHARS]  # the monitor shows 200 characters of one
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    if depth < 4 and isinstance(value, Mapping):
        return {
            str(k)[:MAX_NAME_CHARS]: MASK if hidden(k, v) else plain(v, depth + 1)
            for k, v in list(value.items())[:256]
        }
    if depth < 4 and isinstance(value, (list, tuple)):
        return [plain(v, depth + 1) for v in value[:256]]
    return str(value)[:256]


class InfoUpdates:
    """New hello info on its way from training's thread to the I/O thread; ``lock`` also
    guards the Monitor's config while it changes."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._update: dict[str, Any] = {}
        self._due = False

    def put(self, update: Mapping[str, Any]) -> bool:
        """Add ``update``; True if a hello marker must go in the queue (none is there)."""
        with self.lock:
            self._update.update(update)
            if self._due:
                return False
            self._due = True
        return True

    def take(self) -> dict[str, Any]:
        """Everything put since the last take (the marker is then gone from the queue)."""
        with self.lock:
            update, self._update = self._update, {}
            self._due = False
        return update
