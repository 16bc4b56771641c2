from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers import Tmux


@pytest.fixture(autouse=True)
def _plain_colour_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rendering tests must not depend on the caller's colour settings."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("TRAINMON_ENDPOINT", raising=False)
    monkeypatch.delenv("TRAINMON_RUN", raising=False)


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    term = Tmux()
    try:
        yield term
    finally:
        term.close()
