"""Persistent MQTT sessions: ``[mqtt] clean_start = false`` with a fixed ``client_id`` (and, over MQTT 5,
``session_expiry``).

The broker then keeps the gateway's subscriptions and queues its QoS 1 messages while it is away, so a
restarted gateway receives what was published meanwhile, once each. What the bus must add: not
subscribing again what the session holds (that would repeat retained messages), not acknowledging what
arrives while it shuts down, and telling apart the copies of overlapping subscriptions by their MQTT 5
subscription identifiers, those of an earlier run included.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

import pytest
from pydantic import ValidationError

from gateway.config import MqttSettings
from gateway.mqtt import MqttBus
from gateway.testing import Inbox, Topics, wait_until

pytestmark = pytest.mark.broker

TIMEOUT = 10.0
PROTOCOLS = ["3.1.1", "5"]


def persistent(protocol: str, client_id: str) -> dict[str, Any]:
    settings: dict[str, Any] = {"protocol": protocol, "client_id": client_id, "clean_start": False}
    if protocol == "5":
        settings["session_expiry"] = 300
    return settings


def run_bus(make_bus, settings: dict[str, Any], *subscriptions: tuple[str, Inbox]) -> MqttBus:
    """A started bus whose subscriptions are in place (it counts as connected only after their SUBACK)."""
    bus = make_bus(start=False, **settings)
    for topic_filter, inbox in subscriptions:
        bus.subscribe(topic_filter, inbox)
    bus.start()
    wait_until(lambda: bus.connected, timeout=TIMEOUT, what="the bus connecting and subscribing")
    return bus


def end_marker(mqtt_watch, base: str, *inboxes: Inbox) -> None:
    """Publish an end marker after the test's messages and wait until every inbox has it: whatever the
    broker sent before it, duplicates included, is in by then."""
    mqtt_watch.publish(f"{base}/end", "end")
    wait_until(lambda: all(b"end" in inbox.payloads() for inbox in inboxes), timeout=TIMEOUT,
               what="the end marker")


@pytest.mark.parametrize(("overrides", "problem"), [
    ({"session_expiry": 60}, 'session_expiry needs protocol = "5"'),
    ({"clean_start": False, "protocol": "5", "session_expiry": 60}, "needs a fixed client_id"),
    ({"clean_start": False, "client_id": "x"}, None),  # 3.1.1: the broker keeps the session
    ({"clean_start": False, "client_id": "x", "protocol": "5"}, "needs session_expiry > 0"),
    ({"clean_start": False, "client_id": "x", "protocol": "5", "session_expiry": 60}, None),
    ({"session_expiry": 2**32, "protocol": "5"}, "less than or equal to 4294967295"),
])
def test_session_settings_are_checked_up_front(overrides, problem):
    if problem is None:
        assert MqttSettings(**overrides).clean_start is False
    else:
        with pytest.raises(ValidationError, match=problem):
            MqttSettings(**overrides)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_restarted_bus_gets_what_was_published_while_it_was_away_once_each(make_bus, mqtt_watch, protocol,
                                                                            housebus_topics: Topics):
    base = housebus_topics.base
    settings = persistent(protocol, f"persist-{uuid.uuid4().hex[:8]}")
    first = Inbox()
    bus = run_bus(make_bus, settings, (f"{base}/rf12/+", first), (f"{base}/end", first))
    mqtt_watch.publish(f"{base}/rf12/kitchen", "before")
    end_marker(mqtt_watch, base, first)
    bus.stop()

    sent = [f"away {n}".encode() for n in range(20)]
    for payload in sent:
        mqtt_watch.publish(f"{base}/rf12/kitchen", payload)

    second = Inbox()
    bus = run_bus(make_bus, settings, (f"{base}/rf12/+", second), (f"{base}/end", second))
    assert bus.session_present
    end_marker(mqtt_watch, base, second)
    assert second.payloads() == [*sent, b"end"]
    assert first.payloads() == [b"before", b"end"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_clean_start_gets_nothing_from_before(make_bus, mqtt_watch, protocol, housebus_topics: Topics):
    base = housebus_topics.base
    settings = persistent(protocol, f"clean-{uuid.uuid4().hex[:8]}")
    bus = run_bus(make_bus, settings, (f"{base}/rf12/+", Inbox()))
    bus.stop()
    mqtt_watch.publish(f"{base}/rf12/kitchen", "while away")

    inbox = Inbox()
    bus = run_bus(make_bus, settings | {"clean_start": True}, (f"{base}/rf12/+", inbox), (f"{base}/end", inbox))
    assert not bus.session_present
    end_marker(mqtt_watch, base, inbox)
    assert inbox.payloads() == [b"end"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_messages_arriving_during_shutdown_are_left_for_the_next_start(make_bus, mqtt_watch, protocol,
                                                                       housebus_topics: Topics):
    base = housebus_topics.base
    settings = persistent(protocol, f"intake-{uuid.uuid4().hex[:8]}")
    first = Inbox()
    bus = run_bus(make_bus, settings, (f"{base}/rf12/+", first))
    bus.close_intake()  # as the gateway does before its components stop
    sent = [f"late {n}".encode() for n in range(5)]
    for payload in sent:
        mqtt_watch.publish(f"{base}/rf12/kitchen", payload)
    wait_until(lambda: bus.withheld == len(sent), timeout=TIMEOUT, what="the messages reaching the closing bus")
    bus.stop()
    assert first.payloads() == []

    second = Inbox()
    run_bus(make_bus, settings, (f"{base}/rf12/+", second), (f"{base}/end", second))
    end_marker(mqtt_watch, base, second)
    assert second.payloads() == [*sent, b"end"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_resumed_session_brings_no_second_copy_of_retained_messages(make_bus, mqtt_watch, protocol, own_broker,
                                                                      housebus_topics: Topics):
    # The broker restarts with its persistence: the session is there when the bus reconnects.
    from gateway.testing import MqttWatch

    base = housebus_topics.base
    watch = MqttWatch(own_broker)
    watch.connect()
    watch.publish(f"{base}/rf12/kitchen", "retained", retain=True)
    inbox = Inbox()
    bus = run_bus(make_bus, persistent(protocol, f"resume-{uuid.uuid4().hex[:8]}") | {"broker": own_broker},
                  (f"{base}/rf12/+", inbox), (f"{base}/end", inbox))
    wait_until(lambda: inbox.payloads() == [b"retained"], timeout=TIMEOUT, what="the retained message")
    watch.close()

    own_broker.restart()
    wait_until(lambda: bus.connected, timeout=TIMEOUT, what="the bus reconnecting")
    assert bus.session_present
    watch = MqttWatch(own_broker)
    watch.connect()
    watch.publish(f"{base}/rf12/kitchen", "live")
    end_marker(watch, base, inbox)
    watch.close()
    # Subscribing again would have brought "retained" once more, with its retain flag.
    assert inbox.payloads() == [b"retained", b"live", b"end"]


def test_copies_for_a_subscription_of_an_earlier_run_are_ignored(make_bus, mqtt_watch, housebus_topics: Topics):
    # The config changed between runs: the broker's session still holds the old filter, and sends a copy
    # for it besides the copy for the new one.
    base = housebus_topics.base
    settings = persistent("5", f"stale-{uuid.uuid4().hex[:8]}")
    run_bus(make_bus, settings, (f"{base}/rf12/+", Inbox())).stop()

    inbox = Inbox()
    bus = run_bus(make_bus, settings, (f"{base}/rf12/#", inbox), (f"{base}/end", inbox))
    mqtt_watch.publish(f"{base}/rf12/kitchen", "one")
    end_marker(mqtt_watch, base, inbox)
    assert inbox.payloads() == [b"one", b"end"]
    assert bus.stale == 1


def test_a_shared_subscription_dropped_from_the_config_stops_taking_its_share(make_bus, mqtt_watch, tmp_path,
                                                                              housebus_topics: Topics):
    # E.g. a Cosm forwarder retired from a shared group: left in its session, the shared subscription would
    # keep taking every second reading, and the bus would ignore them, unwanted.
    base = housebus_topics.base
    shared = f"$share/g-{uuid.uuid4().hex[:6]}/{base}/rf12/+"
    retired = persistent("5", f"retired-{uuid.uuid4().hex[:8]}") | {"session_file": tmp_path / "session.json"}
    run_bus(make_bus, retired, (shared, Inbox())).stop()
    other = Inbox()
    run_bus(make_bus, persistent("5", f"other-{uuid.uuid4().hex[:8]}"), (shared, other), (f"{base}/end", other))

    # Its config no longer has the group. It counts as connected once its SUBSCRIBEs are acknowledged, and
    # the UNSUBSCRIBE went before them on the same connection.
    bus = run_bus(make_bus, retired, (f"{base}/end", Inbox()))
    sent = [f"{n}".encode() for n in range(10)]
    for payload in sent:
        mqtt_watch.publish(f"{base}/rf12/kitchen", payload)
    end_marker(mqtt_watch, base, other)
    assert other.payloads() == [*sent, b"end"]
    assert bus.stale == 0


def test_a_restarted_gateway_hands_what_its_session_kept_to_the_components(gateway_factory, mqtt_watch,
                                                                           housebus_topics: Topics):
    # The broker sends what it kept as soon as it accepts the connection: the components must have
    # subscribed by then, even one whose start() takes a while.
    from gateway import Component, hookimpl

    base = housebus_topics.base
    received: list[bytes] = []
    holder: dict[str, Any] = {}

    class Slow(Component):
        section = "slow"

        def start(self) -> None:
            if "gateway" in holder:
                # A start that takes a while: long enough for a bus started before it to connect.
                with contextlib.suppress(TimeoutError):
                    wait_until(lambda: holder["gateway"].bus.connected, timeout=1.0, what="the bus connecting")
            self.ctx.subscribe(f"{base}/slow/+", lambda m: received.append(m.payload))

    class Plugin:
        @hookimpl
        def gateway_register_components(self):
            return [Slow]

    mqtt = persistent("5", f"slow-{uuid.uuid4().hex[:8]}")
    first = gateway_factory({"slow": {}}, plugins=[("slow", Plugin())], mqtt=mqtt)
    mqtt_watch.wait_ready(base)
    first.stop()
    sent = [f"{n}".encode() for n in range(10)]
    for payload in sent:
        mqtt_watch.publish(f"{base}/slow/x", payload)

    mark = mqtt_watch.mark()
    second = gateway_factory({"slow": {}}, plugins=[("slow", Plugin())], mqtt=mqtt, start=False)
    holder["gateway"] = second
    second.start()
    mqtt_watch.wait_ready(base, after=mark)
    mqtt_watch.publish(f"{base}/slow/x", "end")
    wait_until(lambda: b"end" in received, timeout=TIMEOUT, what="the end marker")
    assert received == [*sent, b"end"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_topic_first_retained_while_the_link_was_down_arrives_once(make_bus, mqtt_watch, mqtt_broker, protocol,
                                                                     housebus_topics: Topics):
    # The session kept the subscription, so the broker queues the new retained message as a live one;
    # subscribing again after the reconnect would bring it a second time, retained.
    from gateway.sitebrokers import Cut

    base = housebus_topics.base
    inbox = Inbox()
    with Cut(mqtt_broker.port) as link:
        bus = run_bus(make_bus, persistent(protocol, f"link-{uuid.uuid4().hex[:8]}") | {"port": link.port},
                      (f"{base}/rf12/+", inbox), (f"{base}/end", inbox))
        link.cut()
        wait_until(lambda: not bus.connected, timeout=TIMEOUT, what="the bus noticing the cut")
        mqtt_watch.publish(f"{base}/rf12/cellar", "new", retain=True)
        link.restore()
        wait_until(lambda: bus.connected, timeout=TIMEOUT, what="the bus reconnecting")
        assert bus.session_present
        end_marker(mqtt_watch, base, inbox)
    assert inbox.payloads() == [b"new", b"end"]
