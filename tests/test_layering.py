"""Imports point one way: every module of both packages, each imported alone in a fresh
interpreter, loads nothing from a layer above its own, nor a part it must do without;
and each package's public surface is its sorted __all__."""

from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
import subprocess
import sys

import pytest

import trainmon
import trainmon_client

# The layers from the bottom up: a module may load its own layer's modules and those
# below, never one above. The longest matching prefix decides a module's layer.
LAYERS: dict[str, int] = {
    "trainmon_client": 0,  # the publisher and the wire: no part of the monitor
    "trainmon": 1,  # leaves: names, escape, keys
    "trainmon.state": 2,  # records -> state
    "trainmon.sources": 3,  # records in (ZeroMQ, files) and out
    "trainmon.view": 3,  # state -> frame
    "trainmon.report": 4,  # state -> plain text, using the view's formats
    "trainmon.sources.export": 4,  # files out, some drawn by the view
    "trainmon.controls": 5,  # keys -> actions -> view options
    "trainmon.app": 6,  # the loops that tie sources, state, view and keys together
    "trainmon.cli": 7,  # the commands
    "trainmon.__main__": 7,
}
FRAMEWORKS = {"torch", "numpy", "keras", "transformers", "lightning", "tensorboard"}
# What each part must do without, whatever layer it is in.
WITHOUT: dict[str, set[str]] = {
    # the client: no monitor part, and no framework (an integration loads its own)
    "trainmon_client": {"rich", "click", "trainmon", *FRAMEWORKS},
    "trainmon_client.integrations": {"trainmon"},
    # the wire and its records: what replay and export of a file use, without sockets
    "trainmon_client.protocol": {"zmq", "rich", "click", "trainmon"},
    "trainmon_client.records": {"zmq", "rich", "click", "trainmon"},
    "trainmon_client.checks": {"zmq", "rich", "click", "trainmon"},
    "trainmon_client.text": {"zmq", "rich", "click", "trainmon"},
    "trainmon_client.framing": {"zmq", "rich", "click", "trainmon"},
    "trainmon": {"zmq", "rich", "click", "termios", "tty"},
    "trainmon.keys": {"zmq", "rich", "click", "termios", "tty", "trainmon.state"},
    "trainmon.state": {"zmq", "rich", "click", "termios", "tty"},
    "trainmon.view": {"zmq", "click", "termios", "tty", "trainmon.sources"},
    "trainmon.report": {"zmq", "click", "termios", "tty", "trainmon.sources"},
    "trainmon.sources": {"zmq", "click", "termios", "tty", "trainmon.view"},
    "trainmon.sources.subscriber": {"click", "termios", "tty", "trainmon.view"},
    "trainmon.sources.links": {"click", "termios", "tty", "trainmon.view"},
    "trainmon.sources.endpoints": {"click", "termios", "tty", "trainmon.view"},
    "trainmon.sources.relay": {"click", "termios", "tty", "trainmon.view"},
    "trainmon.sources.export": {"zmq", "click", "termios", "tty"},
    "trainmon.controls": {"zmq", "click", "trainmon.sources"},
    "trainmon.app": {"click"},
    "trainmon.cli": set(),
    "trainmon.__main__": set(),
}


def _longest_prefix(name: str, table: dict[str, object]) -> str:
    matches = [key for key in table if name == key or name.startswith(key + ".")]
    return max(matches, key=len)


def _all_modules() -> list[str]:
    names = ["trainmon", "trainmon_client"]
    for package in (trainmon, trainmon_client):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if not info.name.endswith(".__main__"):  # it runs the program when imported
                names.append(info.name)
    return sorted(names)


MODULES = _all_modules()


def _modules_after_import(module: str) -> set[str]:
    code = f"import importlib, sys; importlib.import_module({module!r}); print(*sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_every_module_is_in_a_layer() -> None:
    """The walk found the rooms (so the test below cannot pass by finding none)."""
    assert {"trainmon.state", "trainmon.view", "trainmon.sources", "trainmon.cli"} <= set(MODULES)
    assert any(name.startswith("trainmon_client.") for name in MODULES)
    assert len(MODULES) > 40


@pytest.mark.parametrize("module", MODULES)
def test_imports_point_one_way(module: str) -> None:
    """Imported alone, a module loads no trainmon module of a higher layer and nothing
    its part must do without (sockets in the state or view, a terminal in the view...)."""
    framework = module.split(".")[-1]
    if (
        module.startswith("trainmon_client.integrations.")
        and importlib.util.find_spec(framework) is None
        and not os.environ.get("CI")  # (CI installs every framework an integration uses)
    ):
        pytest.skip(f"{module} needs {framework}, not installed here")
    loaded = _modules_after_import(module)
    layer = LAYERS[_longest_prefix(module, LAYERS)]
    ours = {name for name in loaded if name.split(".")[0] in ("trainmon", "trainmon_client")}
    above = sorted(name for name in ours if LAYERS[_longest_prefix(name, LAYERS)] > layer)
    assert not above, f"{module} (layer {layer}) loads {above}"
    without = WITHOUT[_longest_prefix(module, WITHOUT)]
    found = sorted(
        name for name in loaded if any(name == w or name.startswith(w + ".") for w in without)
    )
    assert not found, f"{module} loads {found}"


@pytest.mark.parametrize(
    "module",
    [
        "trainmon_client",
        "trainmon_client.protocol",
        "trainmon.state",
        "trainmon.view",
        "trainmon.sources",
        "trainmon.app",
        "trainmon.app.live",
        "trainmon.app.pacing",
        "trainmon.keys",
        "trainmon.cli",
        "trainmon.controls.reducer",
        "trainmon.controls.terminal",
    ],
)
def test_public_surface_is_a_sorted_list(module: str) -> None:
    """__all__ is sorted and names things that exist."""
    mod = importlib.import_module(module)
    names = mod.__all__
    assert names == sorted(names)
    assert all(hasattr(mod, name) for name in names)


def test_client_api() -> None:
    """The client's public names are exactly these."""
    import trainmon_client

    assert trainmon_client.__all__ == [
        "DEFAULT_ENDPOINT",
        "Monitor",
        "PROTOCOL_VERSION",
        "ProtocolError",
        "Record",
        "__version__",
        "decode",
        "encode",
    ]
