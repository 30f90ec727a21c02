"""Topics the bus can publish to, and retained messages for every subscriber of a filter (issue 8, D1 and D8).

* A topic the broker would refuse is refused by ``publish`` itself, connected or not, and a bad item
  that still reaches the outbox never ends the network thread: the bus keeps reconnecting.
* Each subscription gets the retained messages of its filter once per connection, also when another
  subscription on the same bus already follows that filter.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest

from gateway import Message
from gateway.broker import Broker
from gateway.mqtt import MqttBus
from gateway.testing import MqttWatch, Topics, wait_until

pytestmark = pytest.mark.broker

TIMEOUT = 10.0
RECONNECT_TIMEOUT = 20.0  # the bus retries with backoff from 1 s


# ---- helpers -------------------------------------------------------------------------------


class Recorder:
    """A subscription callback that keeps every message and lets the test wait for one."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self._cond = threading.Condition()

    def __call__(self, message: Message) -> None:
        with self._cond:
            self.messages.append(message)
            self._cond.notify_all()

    def wait_for(self, payload: bytes, *, retain: bool | None = None, count: int = 1,
                 timeout: float = TIMEOUT) -> None:
        """Wait until ``count`` messages with this payload (and retain flag, if given) have arrived."""

        def seen() -> int:
            return sum(m.payload == payload and (retain is None or m.retain is retain) for m in self.messages)

        deadline = time.monotonic() + timeout
        with self._cond:
            while seen() < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{count} x {payload!r} (retain={retain}) not received; got {self.log()}")
                self._cond.wait(remaining)

    def log(self) -> list[tuple[bytes, bool]]:
        with self._cond:
            return [(m.payload, m.retain) for m in self.messages]


def connected(bus: MqttBus, timeout: float = TIMEOUT) -> MqttBus:
    wait_until(lambda: bus.connected, timeout=timeout, what="the bus connecting")
    return bus


def broker_down(broker: Broker, bus: MqttBus) -> None:
    broker.stop()
    wait_until(lambda: not bus.connected, what="the bus noticing the broker is gone")


# ---- D1: topics publish refuses --------------------------------------------------------------

BAD_TOPICS = {
    "plus wildcard": "housebus/t/+/temperature",
    "hash wildcard": "housebus/t/#",
    "wildcard alone": "+",
    "empty": "",
    "NUL": "housebus/t/a\0b",
    "lone surrogate": "housebus/t/\ud800",  # a str Python holds but cannot encode as UTF-8
    "65 536 ASCII bytes": "a" * 65_536,
    "65 536 bytes in 32 768 characters": "ü" * 32_768,
}


@pytest.mark.parametrize("topic", list(BAD_TOPICS.values()), ids=list(BAD_TOPICS))
@pytest.mark.parametrize("state", ["disconnected", "connected"])
@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_publish_refuses_a_topic_the_broker_cannot_take(topic, state, protocol, make_bus):
    bus = make_bus(start=state == "connected", protocol=protocol)
    if state == "connected":
        connected(bus)
    for retain in (False, True):
        with pytest.raises(ValueError, match="topic"):
            bus.publish(topic, "x", retain=retain)
    assert bus.queued == 0
    assert bus.connected is (state == "connected")


def test_the_longest_topics_mqtt_allows_are_published(make_bus, mqtt_watch, housebus_topics: Topics):
    base = f"{housebus_topics.base}/"
    bus = connected(make_bus())
    ascii_topic = base + "a" * (65_535 - len(base))
    # Two bytes a character: the limit is on the encoded topic, not on its length in characters.
    umlaut_topic = base + "ü" * ((65_535 - len(base)) // 2)
    umlaut_topic += "a" * (65_535 - len(umlaut_topic.encode()))
    assert len(ascii_topic) == len(umlaut_topic.encode()) == 65_535
    bus.publish(ascii_topic, "ascii")
    bus.publish(umlaut_topic, "umlaut")
    assert mqtt_watch.wait_for(ascii_topic).text == "ascii"
    assert mqtt_watch.wait_for(umlaut_topic).text == "umlaut"


def test_a_refused_topic_leaves_the_bus_reconnecting_and_delivering(own_broker, make_bus, housebus_topics: Topics):
    """The regression of issue 8: a wildcard publish during an outage used to end the network thread."""
    base = housebus_topics.base
    bus = connected(make_bus(broker=own_broker))
    good = Recorder()
    bus.subscribe(f"{base}/good", good)  # the bus hears its own messages once it is back
    # A retained publish is also replayed after every reconnect: a refused one must not be kept for that.
    with pytest.raises(ValueError):
        bus.publish(f"{base}/+/retained", "bad", retain=True)

    broker_down(own_broker, bus)
    with pytest.raises(ValueError):
        bus.publish(f"{base}/#", "bad")
    bus.publish(f"{base}/good", "queued")
    own_broker.start()
    good.wait_for(b"queued", timeout=RECONNECT_TIMEOUT)
    connected(bus)
    bus.publish(f"{base}/good", "live")
    good.wait_for(b"live")


def test_a_message_the_client_refuses_at_reconnect_is_dropped_and_the_rest_delivered(
        own_broker, make_bus, housebus_topics: Topics, caplog):
    """One bad item in the outbox or the retained replay must not end paho's network thread.

    ``publish`` does not check the QoS (paho does, when it sends), so QoS 3 is a bad item that
    still gets as far as the flush after a reconnect.
    """
    caplog.set_level(logging.ERROR, logger="housebus.mqtt")
    base = housebus_topics.base
    bus = connected(make_bus(broker=own_broker))
    good = Recorder()
    bus.subscribe(f"{base}/good", good)
    with pytest.raises(ValueError):
        bus.publish(f"{base}/bad-retained", "bad", qos=3, retain=True)  # kept for the replay all the same

    broker_down(own_broker, bus)
    bus.publish(f"{base}/bad-queued", "bad", qos=3)
    bus.publish(f"{base}/good", "queued after the bad one")
    own_broker.start()
    good.wait_for(b"queued after the bad one", timeout=RECONNECT_TIMEOUT)
    connected(bus)
    dropped = sorted(r.getMessage().split(":")[0] for r in caplog.records if r.levelno == logging.ERROR)
    assert dropped == [f"dropped a queued message to {base}/bad-queued",
                       f"dropped the retained message of {base}/bad-retained"]

    # Dropped, not kept for the next reconnect.
    caplog.clear()
    broker_down(own_broker, bus)
    own_broker.start()
    connected(bus, RECONNECT_TIMEOUT)
    bus.publish(f"{base}/good", "after the second outage")
    good.wait_for(b"after the second outage")
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR] == []


# ---- D8: retained messages for a second subscriber of a filter -------------------------------


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
@pytest.mark.parametrize("filter_kind", ["topic", "wildcard"])
def test_a_second_subscriber_of_a_filter_gets_its_retained_messages_and_the_first_no_repeat(
        protocol, filter_kind, make_bus, mqtt_watch, housebus_topics: Topics):
    topic = f"{housebus_topics.base}/light/kitchen"
    topic_filter = topic if filter_kind == "topic" else f"{housebus_topics.base}/light/+"
    mqtt_watch.publish(topic, "kept", retain=True)
    bus = connected(make_bus(protocol=protocol))
    first, second = Recorder(), Recorder()
    bus.subscribe(topic_filter, first)
    first.wait_for(b"kept", retain=True)
    bus.subscribe(topic_filter, second)
    second.wait_for(b"kept", retain=True)

    # Sent on the bus's own connection, so the broker sends it after whatever the SUBSCRIBE brought.
    bus.publish(topic, "sentinel")
    first.wait_for(b"sentinel")
    second.wait_for(b"sentinel")
    assert first.log() == [(b"kept", True), (b"sentinel", False)]
    assert second.log() == [(b"kept", True), (b"sentinel", False)]


def test_a_subscriber_on_an_overlapping_filter_gets_the_retained_message_once(make_bus, mqtt_watch,
                                                                               housebus_topics: Topics):
    base = housebus_topics.base
    topic = f"{base}/light/kitchen"
    mqtt_watch.publish(topic, "kept", retain=True)
    bus = connected(make_bus())
    wide, exact = Recorder(), Recorder()
    bus.subscribe(f"{base}/light/+", wide)
    wide.wait_for(b"kept", retain=True)
    bus.subscribe(topic, exact)  # its SUBSCRIBE brings the retained message for both filters
    exact.wait_for(b"kept", retain=True)
    bus.publish(topic, "sentinel")
    wide.wait_for(b"sentinel")
    exact.wait_for(b"sentinel")
    assert wide.log() == [(b"kept", True), (b"sentinel", False)]
    assert exact.log() == [(b"kept", True), (b"sentinel", False)]


def each_gets_kept_once(bus: MqttBus, topic: str, first: Recorder, second: Recorder) -> None:
    """Start ``bus`` with ``first`` subscribed (``second`` joins as it connects): each gets ``kept`` once."""
    bus.subscribe(topic, first)
    bus.start()
    first.wait_for(b"kept", retain=True)
    second.wait_for(b"kept", retain=True)
    connected(bus)
    bus.publish(topic, "sentinel")
    first.wait_for(b"sentinel")
    second.wait_for(b"sentinel")
    assert first.log() == [(b"kept", True), (b"sentinel", False)]
    assert second.log() == [(b"kept", True), (b"sentinel", False)]


class SubscribesAgainAsItConnects(MqttBus):
    """A bus on which a second subscription to a known filter is made right after the CONNACK.

    Its SUBSCRIBE for the filters known then is not acknowledged yet, so the bus is not
    ``connected``: the moment when components starting alongside the bus subscribe.
    """

    late_filter: str
    late_callback: Recorder

    def _on_connect(self, *args: Any) -> None:
        super()._on_connect(*args)
        self.subscribe(self.late_filter, self.late_callback)


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_a_second_subscriber_added_before_the_suback_gets_the_retained_message_once(protocol, make_bus, mqtt_watch,
                                                                                    housebus_topics: Topics):
    topic = f"{housebus_topics.base}/light/kitchen"
    mqtt_watch.publish(topic, "kept", retain=True)
    bus = make_bus(cls=SubscribesAgainAsItConnects, start=False, protocol=protocol)
    first, second = Recorder(), Recorder()
    bus.late_filter, bus.late_callback = topic, second
    each_gets_kept_once(bus, topic, first, second)


class RetainedBeforeSuback(MqttBus):
    """A bus that sees the retained messages of its CONNACK SUBSCRIBE before the SUBACK.

    MQTT leaves that order to the broker; Mosquitto sends the SUBACK first, so this bus holds it
    back until the first retained message has been handled, and a second subscription to the
    filter is made in between, the bus not ``connected`` yet.
    """

    late_filter: str
    late_callback: Recorder
    held: tuple[Any, ...] | None = None

    def _on_subscribe(self, *args: Any) -> None:
        if not self.connected and self.held is None:
            self.held = args
            return
        super()._on_subscribe(*args)

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        super()._on_message(client, userdata, msg)
        if self.held and msg.retain:
            self.subscribe(self.late_filter, self.late_callback)
            held, self.held = self.held, ()  # released once only
            super()._on_subscribe(*held)


def test_a_second_subscriber_added_after_the_retained_message_went_by_before_the_suback_gets_it(
        make_bus, mqtt_watch, housebus_topics: Topics):
    topic = f"{housebus_topics.base}/light/kitchen"
    mqtt_watch.publish(topic, "kept", retain=True)
    bus = make_bus(cls=RetainedBeforeSuback, start=False)
    first, second = Recorder(), Recorder()
    bus.late_filter, bus.late_callback = topic, second
    each_gets_kept_once(bus, topic, first, second)


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_both_subscribers_get_the_retained_message_again_after_a_broker_restart(protocol, own_broker, make_bus,
                                                                               housebus_topics: Topics):
    topic = f"{housebus_topics.base}/light/kitchen"
    publisher = MqttWatch(own_broker)
    publisher.connect()
    publisher.publish(topic, "kept", retain=True)  # the broker keeps it on disk across its restart
    publisher.close()
    bus = connected(make_bus(broker=own_broker, protocol=protocol))
    first, second = Recorder(), Recorder()
    bus.subscribe(topic, first)
    first.wait_for(b"kept", retain=True)
    bus.subscribe(topic, second)
    second.wait_for(b"kept", retain=True)

    broker_down(own_broker, bus)
    own_broker.start()
    first.wait_for(b"kept", retain=True, count=2, timeout=RECONNECT_TIMEOUT)
    second.wait_for(b"kept", retain=True, count=2)
    connected(bus)
    bus.publish(topic, "sentinel")
    first.wait_for(b"sentinel")
    second.wait_for(b"sentinel")
    expected = [(b"kept", True), (b"kept", True), (b"sentinel", False)]
    assert first.log() == expected
    assert second.log() == expected
