"""No ``assert`` in product code: ``python -O`` strips them, so a check written as one is no check at all.

A value that cannot be None is passed in so that its type says so; anything else that can go wrong raises a
real exception (``CommandError``, ``EncodeError``, ``RuntimeError`` ...). Tests are free to assert.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from gateway.broker import Broker
from gateway.testing import MqttWatch

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = [ROOT / "gateway", *sorted(ROOT.glob("plugins/*/src")), *sorted(ROOT.glob("tests/plugins/*/src"))]


def product_sources() -> list[Path]:
    return sorted(path for folder in PRODUCT for path in folder.rglob("*.py"))


def asserts_in(source: str) -> list[str]:
    """Each ``assert`` statement in ``source``, as ``<line>: <statement>``."""
    tree = ast.parse(source)
    return [f"{node.lineno}: {ast.unparse(node)}" for node in ast.walk(tree) if isinstance(node, ast.Assert)]


def test_the_check_reads_the_core_and_every_plugins_source() -> None:
    """Guards the glob: a moved folder must not make the check below pass by reading nothing."""
    relative = {path.relative_to(ROOT).as_posix() for path in product_sources()}
    for expected in ("gateway/component.py", "gateway/testing.py", "plugins/rf12/src/gateway_rf12/component.py",
                     "plugins/rfxtrx/src/gateway_rfxtrx/encoders.py",
                     "tests/plugins/housebus-example/src/gateway_example/__init__.py"):
        assert expected in relative


def test_product_code_has_no_assert_statements() -> None:
    found = [f"{path.relative_to(ROOT)}:{line}" for path in product_sources()
             for line in asserts_in(path.read_text(encoding="utf-8"))]
    assert found == [], "assert vanishes under python -O; raise a real exception instead:\n" + "\n".join(found)


def test_the_check_finds_an_assert_nested_anywhere() -> None:
    source = "class A:\n    def f(self, x):\n        if x:\n            assert x is not None, 'why'\n"
    assert asserts_in(source) == ["4: assert x is not None, 'why'"]


# ---- what one of the asserts became ------------------------------------------------------------------------

@pytest.mark.broker
def test_a_test_client_that_is_not_connected_refuses_to_subscribe_at_once(mqtt_broker: Broker) -> None:
    """It used to be ``assert mid is not None``: under -O, a wait for a SUBACK that never comes."""
    watch = MqttWatch(mqtt_broker)
    with pytest.raises(ConnectionError, match=r"could not subscribe to \('a/#',\): .*not.*connect"):
        watch.subscribe("a/#", timeout=5)
