"""A hello's config (the run's hyperparameters) as the few short texts the monitor keeps."""

from __future__ import annotations

import reprlib
from typing import Any, Final

from trainmon_client.protocol import clean_text

__all__ = ["config_items"]

_CONFIG_ITEMS: Final = 64  # hyperparameters kept per run, as text
_CONFIG_KEY_CHARS: Final = 64
_CONFIG_VALUE_CHARS: Final = 200
_CONFIG_DEPTH: Final = 3  # nested maps flattened to dotted keys this deep
_config_repr = reprlib.Repr()  # lists and maps in a config, shown short
_config_repr.maxlevel, _config_repr.maxlist, _config_repr.maxdict = 2, 8, 8
_config_repr.maxstring = _config_repr.maxother = _CONFIG_VALUE_CHARS


def config_items(config: dict[str, Any]) -> tuple[dict[str, str], int]:
    """A hello's config as at most 64 ``key: text`` pairs, nested maps as dotted keys
    (``optim.lr``), every text cleaned for the terminal and cut, and how many more
    items there were: all the screen shows of it, and all the monitor keeps, whatever
    size of map a peer sends."""
    out: dict[str, str] = {}
    more = _flatten(config, "", 0, out)
    return out, more


def _flatten(config: dict[str, Any], prefix: str, depth: int, out: dict[str, str]) -> int:
    """Put ``config``'s items into ``out`` up to the limit; how many more there were
    (a map past the limit counts as one)."""
    more = 0
    for key, value in config.items():
        if len(out) >= _CONFIG_ITEMS:
            more += 1  # a map counts as one: not looked into
            continue
        name = prefix + clean_text(str(key))[:_CONFIG_KEY_CHARS]
        if isinstance(value, dict) and value and depth < _CONFIG_DEPTH:
            more += _flatten(value, name + ".", depth + 1, out)
        else:
            text = value if isinstance(value, str) else _config_repr.repr(value)
            if len(text) > _CONFIG_VALUE_CHARS:
                text = text[: _CONFIG_VALUE_CHARS - 1] + "…"
            out[name] = clean_text(text)
    return more
