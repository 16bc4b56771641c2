"""Configs keep no secrets: the values of keys that look like credentials are masked
before a config leaves the process (the hello, a recording), nested maps and lists of
maps too.

A key is split into words (``hub_token``, ``hubToken``, ``HUB-TOKEN`` and ``hub.token``
are the words hub and token) and is a credential's when it:

- holds ``password``, ``passwd``, ``passphrase``, ``secret`` or ``credential``
  anywhere (``db_password``, ``secret_access_key``, ``client_secret``);
- ends in the word ``token`` (``hub_token``, ``HF_TOKEN``, ``access_token``), unless
  it is a tokenizer's special token (``pad_token``, ``eos_token``: their values are
  text such as ``"<pad>"``);
- ends in an API, access, private, auth or signing key (``wandb_api_key``,
  ``OPENAI_API_KEY``, ``apikey``, ``private_key``);
- or is ``authorization``, ``auth``, ``cookie`` or ``bearer``.

Keys that only mention tokens or keys are left as they are: ``tokenizer_name``,
``max_tokens``, ``num_tokens``, ``pad_token_id``, ``sort_key``, ``key_secret_file``
(a path, held with the word secret, is masked: a false positive that costs nothing).
A value that is None, "", True or False is kept (it says whether one is set).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

__all__ = ["MASK", "hidden", "is_secret_key", "masked"]

MASK: Final = "***"

_WORDS: Final = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_ANYWHERE: Final = ("password", "passwd", "passphrase", "secret", "credential")
_WHOLE: Final = frozenset({"auth", "authorization", "cookie", "cookies", "bearer"})
_KEY_KINDS: Final = frozenset({"api", "access", "private", "auth", "signing", "encryption"})
_JOINED: Final = ("apikey", "authtoken", "accesstoken", "apitoken")
# Tokenizer configs name their special tokens ``<word>_token``; those are text, no secret.
_SPECIAL_TOKENS: Final = frozenset(
    {"pad", "bos", "eos", "unk", "sep", "cls", "mask", "start", "end", "stop", "begin"}
    | {"special", "image", "video", "audio", "boi", "eoi", "boa", "eoa", "decoder"}
)
_MAX_DEPTH: Final = 8  # deeper than this, a config is not looked into (nor sent: see plain)


def is_secret_key(key: object) -> bool:
    """Whether ``key`` names a credential (see the module's docstring)."""
    text = str(key)
    lower = text.lower()
    if any(word in lower for word in _ANYWHERE) or lower.endswith(_JOINED):
        return True
    words = [word.lower() for word in _WORDS.findall(text)]
    if not words:
        return False
    last, before = words[-1], words[-2] if len(words) > 1 else ""
    if last == "token":
        return before not in _SPECIAL_TOKENS
    if last == "key" and before in _KEY_KINDS:
        return True
    return len(words) == 1 and last in _WHOLE


def masked(config: Any, depth: int = 0) -> Any:
    """A copy of ``config`` with every credential's value replaced by ``"***"``: maps
    (nested, and inside lists and tuples) are copied, other values kept as they are."""
    if depth > _MAX_DEPTH:
        return config
    if isinstance(config, Mapping):
        return {
            key: MASK if hidden(key, value) else masked(value, depth + 1)
            for key, value in list(config.items())
        }
    if isinstance(config, (list, tuple)):
        return [masked(value, depth + 1) for value in config]
    return config


def hidden(key: object, value: Any) -> bool:
    """Whether ``value`` is masked: a credential's key, and a value that could be one
    (None, "" and True or False say whether one is set, and are kept)."""
    if value is None or isinstance(value, bool) or (isinstance(value, str) and not value):
        return False
    return is_secret_key(key)
