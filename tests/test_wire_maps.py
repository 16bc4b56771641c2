"""One place builds the wire's maps: the client's protocol module. Any other module of
either package that spells a map with the wire's short keys fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import trainmon
import trainmon_client
from trainmon_client import protocol
from trainmon_client.protocol import WIRE_KEYS

_PROTOCOL = Path(protocol.__file__).resolve()


def _wire_maps(tree: ast.AST) -> list[int]:
    """Lines where a map with the wire's keys is built: a dict display with at least two
    string keys, every string key a wire key, or a ``dict(...)`` call with at least two
    keyword arguments, every one named as a wire key."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            keys = [k.value for k in node.keys if isinstance(k, ast.Constant)]
            if len(keys) >= 2 and all(isinstance(k, str) and k in WIRE_KEYS for k in keys):
                found.append(node.lineno)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "dict"
        ):
            names = [k.arg for k in node.keywords if k.arg is not None]
            if len(names) >= 2 and all(name in WIRE_KEYS for name in names):
                found.append(node.lineno)
    return found


def _modules() -> list[Path]:
    roots = (Path(trainmon_client.__file__).parent, Path(trainmon.__file__).parent)
    return sorted(path.resolve() for root in roots for path in root.rglob("*.py"))


def test_only_the_protocol_module_builds_wire_maps() -> None:
    """Every short-key map on the wire is spelled in protocol.py (to_wire, columns_wire,
    cut_columns): elsewhere a record is built as a Record and turned into its map there."""
    elsewhere = {
        f"{path}:{line}"
        for path in _modules()
        if path != _PROTOCOL
        for line in _wire_maps(ast.parse(path.read_text(), str(path)))
    }
    assert not elsewhere, f"wire maps built outside {_PROTOCOL.name}: {sorted(elsewhere)}"


def test_the_rule_finds_the_protocols_own_maps() -> None:
    """The rule is not blind: it finds the protocol's builders, and the spellings it
    looks for."""
    assert len(_wire_maps(ast.parse(_PROTOCOL.read_text()))) >= 3
    spelled = 'a = {"v": 1, "k": "bye"}\nb = dict(item, s=1, m={})\nc = {"s": 1, "other": 2}'
    assert _wire_maps(ast.parse(spelled)) == [1, 2]
