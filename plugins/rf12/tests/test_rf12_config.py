"""The [rf12] section as a user writes it: mistakes are caught before anything connects."""

from __future__ import annotations

import pytest
from gateway_rf12.config import Rf12Config
from pydantic import ValidationError


@pytest.mark.parametrize("name", ["info", "availability", "send", "unknown"])
def test_a_node_cannot_take_the_name_of_a_plugin_topic(name):
    with pytest.raises(ValidationError, match="reserved for a topic of the plugin"):
        Rf12Config(port="/dev/null", nodes={"5": {"type": "roomNode", "name": name}})


def test_other_names_are_fine():
    config = Rf12Config(port="/dev/null", nodes={"5": {"type": "roomNode", "name": "information"}})
    assert config.nodes["5"].name == "information"
