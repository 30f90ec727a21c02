"""The simulated JeeLink the rf12 tests run against (a module may override ``sim`` with other settings)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from gateway_rf12.simulator import JeeLinkSimulator


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[JeeLinkSimulator]:
    simulator = JeeLinkSimulator(tmp_path / "ttyRF12")
    yield simulator
    simulator.close()
