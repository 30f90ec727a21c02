"""Shared subscriptions (``$share/<group>/<filter>``) through the real broker.

Several gateways on one broker subscribe with the same group, and the broker hands each message to
one of them. The broker delivers such a message under its real topic, so the bus must match it
against the filter without the ``$share/<group>/`` prefix. Mosquitto offers shared subscriptions to
MQTT 3.1.1 clients as well as to MQTT 5 ones, so both protocols are tested.
"""

from __future__ import annotations

import uuid
from collections import Counter

import pytest

from gateway.mqtt import MqttBus, valid_filter
from gateway.testing import Inbox, Topics, wait_until

pytestmark = pytest.mark.broker

TIMEOUT = 10.0
PROTOCOLS = ["3.1.1", "5"]


@pytest.mark.parametrize("topic_filter", ["$share/g/a", "$share/g/a/+", "$share/g/#", "$share/cosm-1/a/+/c/#",
                                          "$share/g/+"])
def test_shared_filters_are_valid(topic_filter):
    assert valid_filter(topic_filter)


@pytest.mark.parametrize("topic_filter", [
    "$share/g",  # no filter after the group
    "$share/g/",  # an empty filter after the group
    "$share//a",  # an empty group
    "$share/+/a",  # a wildcard as the group
    "$share/#/a",
    "$share/g+/a",
    "$share/g/a/#/b",  # the filter itself malformed
])
def test_malformed_shared_filters_are_refused(topic_filter):
    assert not valid_filter(topic_filter)


def subscribed_bus(make_bus, protocol: str, *subscriptions: tuple[str, Inbox]) -> MqttBus:
    """A bus whose subscriptions are in place: it counts as connected only after their SUBACK."""
    bus = make_bus(start=False, protocol=protocol)
    for topic_filter, inbox in subscriptions:
        bus.subscribe(topic_filter, inbox)
    bus.start()
    wait_until(lambda: bus.connected, timeout=TIMEOUT, what="the bus connecting and subscribing")
    return bus


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_shared_subscription_receives_its_messages_under_their_real_topic(make_bus, mqtt_watch, protocol,
                                                                            housebus_topics: Topics):
    base = housebus_topics.base
    inbox = Inbox()
    subscribed_bus(make_bus, protocol, (f"$share/g-{uuid.uuid4().hex[:6]}/{base}/rf12/+", inbox))

    mqtt_watch.publish(f"{base}/rfxtrx/garden", "not for this filter")
    mqtt_watch.publish(f"{base}/rf12/kitchen", "21.5")
    mqtt_watch.publish(f"{base}/rf12/cellar", "12.0")
    wait_until(lambda: len(inbox.messages) >= 2, timeout=TIMEOUT, what="both rf12 messages")
    assert [(m.topic, m.payload) for m in inbox.messages] == [
        (f"{base}/rf12/kitchen", b"21.5"), (f"{base}/rf12/cellar", b"12.0")]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_group_of_buses_shares_the_messages_each_delivered_exactly_once(make_bus, mqtt_watch, protocol,
                                                                          housebus_topics: Topics):
    base = housebus_topics.base
    shared = f"$share/g-{uuid.uuid4().hex[:6]}/{base}/rf12/+"
    first, second = Inbox(), Inbox()
    first_end, second_end = Inbox(), Inbox()
    subscribed_bus(make_bus, protocol, (shared, first), (f"{base}/end", first_end))
    subscribed_bus(make_bus, protocol, (shared, second), (f"{base}/end", second_end))

    sent = [f"{n}".encode() for n in range(40)]
    for n, payload in enumerate(sent):
        mqtt_watch.publish(f"{base}/rf12/node{n % 3}", payload)
    # Both buses see the end marker only after every message the broker gave them before it: any
    # duplicate would be in by then.
    mqtt_watch.publish(f"{base}/end", "end")
    wait_until(lambda: first_end.messages and second_end.messages, timeout=TIMEOUT, what="the end marker")

    got_first, got_second = first.payloads(), second.payloads()
    assert got_first and got_second, f"one bus had all of them: {len(got_first)} and {len(got_second)}"
    assert Counter(got_first + got_second) == Counter(sent)


# Mosquitto 2.0 sends an MQTT 5 client one copy per matching subscription: the bus tells them apart by
# their subscription identifiers.
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_shared_and_an_overlapping_plain_subscription_each_get_a_message_once(make_bus, mqtt_watch, protocol,
                                                                              housebus_topics: Topics):
    # E.g. the Cosm forwarder with a shared group and a LED strip watching the kitchen's motion, in one gateway.
    base = housebus_topics.base
    shared, plain, end = Inbox(), Inbox(), Inbox()
    subscribed_bus(make_bus, protocol, (f"$share/g-{uuid.uuid4().hex[:6]}/{base}/rf12/+", shared),
                   (f"{base}/rf12/kitchen", plain), (f"{base}/end", end))

    sent = [f"{n}".encode() for n in range(5)]
    for payload in sent:
        mqtt_watch.publish(f"{base}/rf12/kitchen", payload)
    mqtt_watch.publish(f"{base}/end", "end")
    wait_until(lambda: end.messages, timeout=TIMEOUT, what="the end marker")
    assert (shared.payloads(), plain.payloads()) == (sent, sent)
