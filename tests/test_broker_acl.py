"""The shipped Mosquitto config: no anonymous access, users limited by the shipped ACL."""

from __future__ import annotations

import pytest

from gateway.testing import MqttWatch

pytestmark = pytest.mark.broker


def client(broker, user=None, **kwargs):
    watch = MqttWatch(broker, user, **kwargs)
    result = watch.connect()
    return watch, result


def test_anonymous_clients_are_refused(mqtt_broker):
    watch, result = client(mqtt_broker, anonymous=True)
    watch.close()
    assert result.is_failure
    assert str(result) == "Not authorized"


def test_wrong_password_is_refused(mqtt_broker):
    watch, result = client(mqtt_broker, "housebus", password="guess")
    watch.close()
    assert result.is_failure


def can_publish(broker, user: str, topic: str, observer: MqttWatch) -> bool:
    """Publish as ``user``, then a marker the ACL allows; the marker proves the first was handled."""
    sender, result = client(broker, user)
    assert not result.is_failure
    mark = observer.mark()
    sender.publish(topic, f"from {user}")
    sender.publish("housebus/acl-test/marker" if user == "housebus" else "housebus/acl-test/x/set",
                   "marker")
    observer.wait_for("housebus/acl-test/#", lambda m: m.text == "marker", after=mark)
    sender.close()
    return any(m.text == f"from {user}" for m in observer.received(topic, after=mark))


@pytest.fixture
def observer(mqtt_broker):
    watch, _ = client(mqtt_broker)
    watch.subscribe("housebus/#", "homeassistant/#", "elsewhere/#")
    yield watch
    watch.close()


@pytest.mark.parametrize(("user", "topic", "allowed"), [
    ("housebus", "housebus/acl-test/bridge/state", True),
    ("housebus", "homeassistant/acl-test/device/x/config", True),
    ("housebus", "elsewhere/acl-test", False),
    ("homeassistant", "homeassistant/acl-test/status", True),
    ("homeassistant", "housebus/acl-test/lamp/set", True),
    ("homeassistant", "housebus/acl-test/bridge/state", False),
    ("dashboard", "housebus/acl-test/lamp/set", True),
    ("dashboard", "housebus/acl-test/send", False),
    ("dashboard", "housebus/acl-test/bridge/state", False),
    ("dashboard", "homeassistant/acl-test/status", False),
])
def test_write_access(mqtt_broker, observer, user, topic, allowed):
    assert can_publish(mqtt_broker, user, topic, observer) is allowed


def test_dashboard_reads_the_gateway_but_not_other_trees(mqtt_broker, observer):
    reader, result = client(mqtt_broker, "dashboard")
    assert not result.is_failure
    reader.subscribe("#")
    publisher, _ = client(mqtt_broker)
    publisher.publish("elsewhere/acl-read", "hidden")
    publisher.publish("housebus/acl-read/state", "visible")
    reader.wait_for("housebus/acl-read/state")
    publisher.close()
    reader.close()
    assert reader.received("elsewhere/#") == []
