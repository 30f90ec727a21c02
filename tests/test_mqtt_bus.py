"""The gateway's MQTT connection (``gateway.mqtt``) on its own, against the real broker.

What the bus promises its users: payload bytes, valid filters, messages handed to every matching
subscription with their flags, subscriptions that survive the moment the connection comes up,
publishes queued while the broker is away (bounded, and logged without flooding), the QoS asked
for, one warning per outage, a stop that returns when the broker hangs, and connecting with the
client id, keep-alive and protocol of the config.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import signal
import time
import uuid
from typing import Any

import pytest

from gateway import CommandError, Message
from gateway.broker import Broker, free_port
from gateway.mqtt import MqttBus, encode, valid_filter
from gateway.testing import MqttWatch, Topics, wait_until

pytestmark = pytest.mark.broker

TIMEOUT = 10.0

# ---- payloads, filters and messages (no broker) -------------------------------------------


@pytest.mark.parametrize(("payload", "expected"), [
    (b"\x00\xff", b"\x00\xff"),
    (bytearray(b"ab"), b"ab"),
    ("Küche", "Küche".encode()),
    (None, b""),
    (0, b"0"),
    (-21.5, b"-21.5"),
    (True, b"true"),  # JSON, not Python's "True"
    (False, b"false"),
    ([1, 2], b"[1,2]"),
    ({"a": ["ü", None], "b": 1}, '{"a":["ü",null],"b":1}'.encode()),  # compact, UTF-8 rather than \u escapes
])
def test_payloads_are_encoded_as_mqtt_clients_expect(payload, expected):
    data = encode(payload)
    assert type(data) is bytes
    assert data == expected


@pytest.mark.parametrize("topic_filter", ["a", "a/b", "+", "#", "a/+/c", "a/#", "+/+/#", "/a", "a//b"])
def test_well_formed_filters_are_valid(topic_filter):
    assert valid_filter(topic_filter)


@pytest.mark.parametrize("topic_filter", ["", "a/#/b", "#/a", "a#", "a/b#", "a+/b", "a/+b", "a/b+"])
def test_malformed_filters_are_refused(topic_filter):
    assert not valid_filter(topic_filter)


def test_message_text_names_a_payload_that_is_not_utf8():
    assert Message("t", "Küche".encode()).text() == "Küche"
    with pytest.raises(CommandError, match=r"^payload is not UTF-8 text$"):
        Message("t", b"\xff\xfe").text()


# ---- a bus on the test broker ---------------------------------------------------------------


def connected(bus: MqttBus) -> MqttBus:
    wait_until(lambda: bus.connected, timeout=TIMEOUT, what="the bus connecting")
    return bus


class Inbox:
    """A subscription callback that keeps what it is given."""

    def __init__(self) -> None:
        self.messages: queue.Queue[Message] = queue.Queue()

    def __call__(self, message: Message) -> None:
        self.messages.put(message)

    def next(self) -> Message:
        return self.messages.get(timeout=TIMEOUT)

    def rest(self) -> list[Message]:
        out = []
        while not self.messages.empty():
            out.append(self.messages.get_nowait())
        return out


def test_subscribe_refuses_a_malformed_filter(make_bus):
    bus = make_bus(start=False)
    with pytest.raises(ValueError, match=re.escape("invalid topic filter: 'a/#/b'")):
        bus.subscribe("a/#/b", Inbox())


def test_messages_reach_their_subscription_with_topic_payload_retain_and_qos(make_bus, mqtt_watch,
                                                                           housebus_topics: Topics):
    base = housebus_topics.base
    # Each subscription is given a retained message once the broker has it: then it is in place.
    mqtt_watch.publish(f"{base}/dev/a", "kept", retain=True, qos=1)
    mqtt_watch.publish(f"{base}/other", "kept too", retain=True, qos=0)
    bus = connected(make_bus())  # qos 1
    devices, other = Inbox(), Inbox()
    bus.subscribe(f"{base}/dev/+", devices)  # subscribed while connected
    bus.subscribe(f"{base}/other", other)  # a second, different filter
    assert devices.next() == Message(f"{base}/dev/a", b"kept", retain=True, qos=1)
    assert other.next() == Message(f"{base}/other", b"kept too", retain=True, qos=0)

    mqtt_watch.publish(f"{base}/dev/b", "at most once", qos=0)
    mqtt_watch.publish(f"{base}/dev/b", b"\x00\xff", qos=1)
    mqtt_watch.publish(f"{base}/other", "hello")
    live_qos0, live_qos1 = devices.next(), devices.next()
    assert live_qos0 == Message(f"{base}/dev/b", b"at most once", retain=False, qos=0)
    assert type(live_qos0.retain) is bool and type(live_qos0.payload) is bytes
    assert live_qos1 == Message(f"{base}/dev/b", b"\x00\xff", retain=False, qos=1)
    assert other.next() == Message(f"{base}/other", b"hello", retain=False, qos=1)
    assert devices.rest() == []


def test_a_second_subscription_to_a_filter_does_not_repeat_retained_messages_to_the_first(
        make_bus, mqtt_watch, housebus_topics: Topics):
    topic = f"{housebus_topics.base}/dev/a"
    mqtt_watch.publish(topic, "kept", retain=True)
    bus = connected(make_bus())
    first, second = Inbox(), Inbox()
    bus.subscribe(topic, first)
    assert first.next().payload == b"kept"  # the broker has the subscription
    bus.subscribe(topic, second)
    # Sent on the bus's own connection, so the broker handles it after anything the bus sent before.
    bus.publish(topic, "after")
    assert [second.next().payload, second.next().payload] == [b"kept", b"after"]  # its own retained message first
    assert [m.payload for m in first.rest()] == [b"after"]  # each subscription is called in turn


def test_cancel_ends_one_subscription_and_leaves_the_others_on_its_filter(make_bus, mqtt_watch,
                                                                          housebus_topics: Topics):
    base = housebus_topics.base
    topic = f"{base}/dev/a"
    mqtt_watch.publish(topic, "ready", retain=True)
    bus = connected(make_bus())
    first, second = Inbox(), Inbox()
    sub1 = bus.subscribe(topic, first)
    sub2 = bus.subscribe(topic, second)
    assert first.next().payload == b"ready"  # the broker has the filter
    second.rest()

    sub1.cancel()
    sub1.cancel()  # twice is harmless
    # Published by the bus itself, so after anything the bus told the broker before.
    bus.publish(topic, "one")
    assert second.next().payload == b"one"

    sub2.cancel()
    barrier = Inbox()
    bus.subscribe(f"{base}/barrier", barrier)
    bus.publish(topic, "two")
    bus.publish(f"{base}/barrier", "")
    barrier.next()  # "two" was handled before it
    assert first.rest() == []
    assert second.rest() == []


class SubscribesAsItConnects(MqttBus):
    """A bus on which a subscription is made right when the broker has accepted the connection.

    Components start while the bus connects, so their subscriptions can land after the CONNACK
    and before the SUBACK of the filters known then; this makes that moment certain.
    """

    late_filter: str
    inbox: Inbox

    def _on_connect(self, *args: Any) -> None:
        super()._on_connect(*args)
        self.subscribe(self.late_filter, self.inbox)


def test_a_subscription_made_as_the_connection_comes_up_is_not_lost(make_bus, mqtt_watch, housebus_topics: Topics):
    base = housebus_topics.base
    # Retained, so each arrives once its subscription is in place at the broker, whenever that is.
    mqtt_watch.publish(f"{base}/late", "late", retain=True)
    mqtt_watch.publish(f"{base}/early", "early", retain=True)
    bus = make_bus(start=False, cls=SubscribesAsItConnects)
    late, early = Inbox(), Inbox()
    bus.late_filter, bus.inbox = f"{base}/late", late
    bus.subscribe(f"{base}/early", early)
    bus.start()
    assert early.next().payload == b"early"
    assert late.next().payload == b"late"


def test_publishes_made_before_the_first_connection_are_delivered_once_it_is_up(make_bus, mqtt_watch, mqtt_broker,
                                                                                housebus_topics: Topics, caplog):
    caplog.set_level(logging.INFO, logger="housebus.mqtt")
    base = housebus_topics.base
    bus = make_bus(start=False)  # qos 1
    for i in range(3):
        bus.publish(f"{base}/seq", str(i))
    bus.publish(f"{base}/kept", "old", retain=True, qos=0)
    bus.publish(f"{base}/kept", "new", retain=True, qos=0)
    assert (bus.queued, bus.connected) == (5, False)

    bus.start()
    mqtt_watch.wait_for(f"{base}/kept")
    connected(bus)
    seq = mqtt_watch.received(f"{base}/seq")
    assert [(m.text, m.qos) for m in seq] == [("0", 1), ("1", 1), ("2", 1)]
    assert [m.text for m in mqtt_watch.received(f"{base}/kept")] == ["new"]  # the latest retained value only
    assert bus.queued == 0
    delivered = [r.getMessage() for r in caplog.records if "queued while disconnected" in r.getMessage()]
    assert delivered == ["delivered 3 messages queued while disconnected"]

    kept = late_retained(mqtt_broker, f"{base}/#")
    assert sorted(kept) == [f"{base}/bridge/state", f"{base}/kept"]  # the queued non-retained ones are not
    assert (kept[f"{base}/kept"].payload, kept[f"{base}/kept"].qos) == (b"new", 0)


def test_a_connection_with_nothing_queued_reports_no_delivery(make_bus, mqtt_watch, housebus_topics: Topics,
                                                              caplog):
    caplog.set_level(logging.INFO, logger="housebus.mqtt")
    bus = make_bus(start=False)
    bus.subscribe(f"{housebus_topics.base}/dev/+", Inbox())
    bus.start()
    connected(bus)
    assert not [r for r in caplog.records if "queued while disconnected" in r.getMessage()]


def test_publish_uses_the_configured_qos_unless_given_one(make_bus, mqtt_watch, housebus_topics: Topics):
    base = housebus_topics.base
    bus = connected(make_bus(qos=1))
    bus.publish(f"{base}/a", "default")
    bus.publish(f"{base}/b", "given", qos=0)
    bus.publish(f"{base}/c", "retained", retain=True)
    assert mqtt_watch.wait_for(f"{base}/a").qos == 1
    assert mqtt_watch.wait_for(f"{base}/b").qos == 0
    assert mqtt_watch.wait_for(f"{base}/c").qos == 1


def test_a_full_outbox_drops_the_oldest_and_warns_once_then_every_thousand(make_bus, caplog):
    caplog.set_level(logging.DEBUG, logger="housebus.mqtt")
    bus = make_bus(start=False, queue_size=2)
    for i in range(2002):
        bus.publish("housebus/t/never-sent", str(i))
    assert (bus.queued, bus.dropped) == (2, 2000)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"broker unreachable and queue full: {n} oldest messages dropped" for n in (1, 1000, 2000)]


def test_a_broker_that_cannot_be_reached_is_named_with_the_reason(make_bus, caplog):
    caplog.set_level(logging.DEBUG, logger="housebus.mqtt")
    port = free_port()
    bus = make_bus(port=port)
    wait_until(lambda: any(r.levelno == logging.WARNING for r in caplog.records), what="a warning")
    warning = next(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert warning == (f"cannot reach broker 127.0.0.1:{port}: [Errno 111] Connection refused; "
                       "retrying with backoff up to 30 s")
    assert not bus.connected


def test_a_refused_login_is_named_with_the_reason(make_bus, caplog):
    caplog.set_level(logging.DEBUG, logger="housebus.mqtt")
    bus = make_bus(password=None)  # a user name alone: the broker wants its password
    wait_until(lambda: any(r.levelno == logging.WARNING for r in caplog.records), what="a warning")
    warning = next(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert warning == "broker refused the connection: Not authorized; retrying with backoff up to 30 s"
    assert not bus.connected


def test_each_outage_is_warned_about_once_and_a_clean_stop_is_not_an_outage(make_bus, own_broker, caplog):
    caplog.set_level(logging.DEBUG, logger="housebus.mqtt")

    def warnings() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]

    def failed_attempts() -> int:
        return sum("cannot reach broker" in r.getMessage() for r in caplog.records)

    bus = connected(make_bus(broker=own_broker))
    bus.subscribe("housebus/t/outages", Inbox())
    for outage in (1, 2):
        own_broker.stop()
        wait_until(lambda: not bus.connected, what="the bus noticing the broker is gone")
        assert bus.connected is False
        failed = failed_attempts()
        wait_until(lambda seen=failed: failed_attempts() > seen, what="a failed reconnection attempt")  # at debug
        own_broker.start()
        connected(bus)
        assert len(warnings()) == outage, warnings()
        assert warnings()[-1].startswith("lost connection to broker: ")
    bus.stop()
    assert len(warnings()) == 2, warnings()


def test_stop_returns_in_time_when_the_broker_does_not_answer(make_bus, own_broker):
    bus = connected(make_bus(broker=own_broker))
    assert own_broker.pid is not None
    os.kill(own_broker.pid, signal.SIGSTOP)  # connected, but it acknowledges nothing any more
    began = time.monotonic()
    bus.stop(timeout=0.3)
    assert time.monotonic() - began < 1.5


@pytest.mark.parametrize(("protocol", "wire"), [("3.1.1", "p2"), ("5", "p5")])
def test_the_broker_sees_the_configured_client_id_keepalive_and_protocol(protocol, wire, make_bus, mqtt_broker):
    client_id = f"bus-{uuid.uuid4().hex[:8]}"
    connected(make_bus(client_id=client_id, keepalive=17, protocol=protocol))
    line = re.compile(rf"New client connected from \S+ as {client_id} \((p\d), c\d, k(\d+), u'housebus'\)")

    def seen() -> list[tuple[str, str]]:
        return line.findall(mqtt_broker.log_file.read_text())

    wait_until(lambda: bool(seen()), what="the broker logging the connection")
    assert seen() == [(wire, "17")]


def late_retained(broker: Broker, *filters: str) -> dict[str, Any]:
    """The retained messages a client subscribing to ``filters`` at QoS 2 now is given, by topic."""
    watch = MqttWatch(broker)
    watch.connect()
    barrier = f"housebus/t/late-{uuid.uuid4().hex}"
    try:
        # At QoS 2 the subscriber gets each retained message at the QoS it was published with.
        watch.client.subscribe([(f, 2) for f in (*filters, barrier)])
        watch.publish(barrier, "done")  # handled after the SUBSCRIBE, so after the retained messages
        watch.wait_for(barrier)
        return {m.topic: m for m in watch.messages if m.retain}
    finally:
        watch.close()
