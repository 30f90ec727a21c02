"""The receiving side of the MQTT connection: the gateway's subscriptions, what the broker's session
holds of them, and which subscriptions an incoming message goes to.

* A subscription to a filter that is already subscribed sends SUBSCRIBE again, so the broker
  re-sends the filter's retained messages (MQTT 3.1.1 and 5.0, 3.8.4). Each subscription is
  handed a retained message of a topic at most once per session, so the older ones do not
  see those again.
* A QoS 1 or 2 message is acknowledged only once it has been handed to its subscriptions: not
  while the gateway starts (``hold_intake``, until its components have subscribed), and not at
  all at shutdown (``close_intake``). With a persistent session (``clean_start = false``, MQTT 5
  ``session_expiry``) the broker delivers one it did not get an acknowledgement for again.
* When the broker kept the session, the SUBSCRIBEs it holds are not sent again, which would
  bring retained messages a second time; only filters added since are. The filters are noted in
  a file, so that the next run unsubscribes those its config no longer has.
* Over MQTT 5 every filter is subscribed with a subscription identifier, and a message goes only
  to the subscriptions whose identifier it carries: a broker sends one copy per matching
  subscription (Mosquitto does), which matching by topic alone would hand to each of them.
"""

from __future__ import annotations

import json
import logging
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from gateway._paho import paho, properties
from gateway.config import MqttSettings
from gateway.errors import CommandError

log = logging.getLogger("housebus.mqtt")

SHARE_PREFIX = "$share/"
SUBSCRIPTION_ID_MAX = 268_435_455  # MQTT 5.0, 3.8.2.1.2
EARLY_QOS0_MAX = 10_000  # QoS 0 messages kept while the components start (hold_intake)
MATCH_CACHE_MAX = 4096  # topics whose matching subscriptions are remembered


@dataclass(frozen=True, slots=True)
class Message:
    """A message received from the broker."""

    topic: str
    payload: bytes
    retain: bool = False
    qos: int = 0

    def text(self) -> str:
        """The payload as text; raises ``CommandError`` if it is not UTF-8."""
        try:
            return self.payload.decode("utf-8")
        except UnicodeDecodeError:
            raise CommandError("payload is not UTF-8 text") from None

    def json(self) -> Any:
        """The payload parsed as JSON; raises ``CommandError`` if it is not JSON."""
        try:
            return json.loads(self.payload)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: nested too deep
            raise CommandError(f"payload is not valid JSON: {exc}") from None


def subscription_id(topic_filter: str) -> int:
    """The MQTT 5 subscription identifier of a filter: the same in every run of the gateway.

    Messages that a broker queued for a persistent session carry the identifier of the run that
    subscribed, so a restarted gateway must give the filter the same one. Two filters of one gateway
    share an identifier with odds of about one in 10^7 for 50 filters; their messages are then told
    apart by topic, as without identifiers.
    """
    return zlib.crc32(topic_filter.encode()) % SUBSCRIPTION_ID_MAX + 1


def match_filter(topic_filter: str) -> str:
    """The filter that a subscription's messages match: ``$share/<group>/<filter>`` without its prefix.

    The broker delivers a shared subscription's messages under their real topic (MQTT 5.0, 4.8.2).
    """
    if topic_filter.startswith(SHARE_PREFIX):
        return topic_filter.split("/", 2)[2] if topic_filter.count("/") >= 2 else ""
    return topic_filter


def valid_filter(topic_filter: str) -> bool:
    """True if ``topic_filter`` is a well-formed MQTT subscription filter, shared ones included.

    A shared one is ``$share/<group>/<filter>``: a non-empty group without ``+``, ``#`` or ``/``.
    """
    if topic_filter.startswith(SHARE_PREFIX):
        group = topic_filter[len(SHARE_PREFIX):].split("/", 1)[0]
        if not group or "+" in group or "#" in group:
            return False
        topic_filter = match_filter(topic_filter)
    levels = topic_filter.split("/")
    last = len(levels) - 1
    return bool(topic_filter) and all(
        ("#" not in level or (level == "#" and i == last)) and ("+" not in level or level == "+")
        for i, level in enumerate(levels)
    )


class Subscription:
    """A topic filter and the callback it feeds; ``cancel()`` to stop receiving."""

    __slots__ = ("_cancel", "callback", "filter", "id", "matches", "retained_seen")

    def __init__(self, topic_filter: str, callback: Callable[[Message], None],
                 cancel: Callable[[Subscription], None]) -> None:
        self.filter = topic_filter  # what is subscribed
        self.matches = match_filter(topic_filter)  # what incoming topics are matched against
        self.id = subscription_id(topic_filter)  # what MQTT 5 messages for it carry
        self.callback = callback
        self._cancel = cancel
        # Topics of the retained messages handed over in this session; the network thread's alone.
        self.retained_seen: set[str] = set()

    def cancel(self) -> None:
        self._cancel(self)


class Subscriptions:
    """The bus's subscriptions, against the broker's session, and the hand-out of incoming messages.

    Args:
        client: the bus's paho client (``manual_ack``).
        settings: the ``[mqtt]`` section.
        lock: the bus's lock, held by the bus around every call but the intake's: what is subscribed
            and whether the bus is connected change together.
        session_file: where the filters of a persistent session are kept (see the module's text).
    """

    def __init__(self, client: paho.Client, settings: MqttSettings, lock: threading.RLock,
                 session_file: Path | None) -> None:
        self._client = client
        self.settings = settings
        self._lock = lock
        self.subs: list[Subscription] = []
        # The subscriptions in the SUBSCRIBEs sent on CONNACK; subscribe_late() sends those added before their SUBACK.
        self._session_subs: set[Subscription] = set()
        self._session_filters: set[str] = set()  # filters the broker's session holds (SUBACK received)
        self._session_file = None if settings.clean_start else session_file
        self._earlier_filters = self._read_session_file()  # an earlier run's, until the first CONNACK
        self._subscribing: dict[int, list[str]] = {}  # SUBSCRIBEs awaiting their SUBACK, by message id
        self._pending: set[int] = set()  # those sent on CONNACK: the bus's outbox waits for them
        self._match_cache: dict[str, tuple[Subscription, ...]] = {}
        self._v5 = settings.protocol == "5"
        self._ids = self._v5  # subscription identifiers, unless the broker says it has none (CONNACK)
        self._intake = threading.Lock()  # held while a message is handed out and acknowledged
        self._intake_open = True
        self._early: list[paho.MQTTMessage] | None = None  # messages kept between hold_intake and open_intake
        self.session_present = False
        self.stale = 0  # messages for a subscription of an earlier run that this one does not have
        self.withheld = 0  # messages that arrived after close_intake, left unacknowledged

    # ---- what is subscribed (under the bus's lock) -------------------------------------------------

    def add(self, sub: Subscription, connected: bool) -> None:
        self.subs.append(sub)
        self._match_cache.clear()
        if connected:
            # Also when the filter is subscribed already: only a SUBSCRIBE makes the broker
            # send its retained messages, which this subscription has not had yet.
            self._send([sub.filter])

    def remove(self, sub: Subscription, connected: bool) -> None:
        if sub not in self.subs:
            return
        self.subs.remove(sub)
        self._match_cache.clear()
        # Not connected: the next CONNACK unsubscribes it, if the broker kept the session. Shutting down
        # (the intake closed): the session keeps it, for the next start.
        if self._intake_open and connected and all(s.filter != sub.filter for s in self.subs):
            self._client.unsubscribe(sub.filter)
            self._session_filters.discard(sub.filter)
            self._write_session_file()

    def _send(self, filters: list[str]) -> list[int]:
        """SUBSCRIBE to ``filters``; the message ids of the packets sent."""
        qos = int(self.settings.qos)
        if not self._ids:
            packets: list[tuple[list[str], Properties | None]] = [(filters, None)] if filters else []
        else:  # an identifier is per SUBSCRIBE packet, not per filter
            packets = [([f], properties(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=subscription_id(f)))
                       for f in filters]
        mids = []
        for packet_filters, props in packets:
            _, mid = self._client.subscribe([(f, qos) for f in packet_filters], properties=props)
            if mid is not None:
                self._subscribing[mid] = packet_filters
                mids.append(mid)
        return mids

    # ---- against the broker's session (paho's thread, under the bus's lock) --------------------------

    def on_connect(self, present: bool, props: Any) -> bool:
        """Subscribe what the session lacks and unsubscribe what it should not hold; True if nothing waits
        for a SUBACK."""
        if self._v5:
            self._ids = getattr(props, "SubscriptionIdentifierAvailable", 1) != 0
        self.session_present = present
        self._subscribing.clear()
        if not present:
            # A new session: the SUBSCRIBEs below bring every subscription its retained messages again.
            self._session_filters.clear()
            for sub in self.subs:
                sub.retained_seen.clear()
        self._session_subs = set(self.subs)
        wanted = dict.fromkeys(s.filter for s in self.subs)
        # Cancelled while the broker was away, or left by an earlier run whose config had them.
        gone = [f for f in self._session_filters | (self._earlier_filters if present else set()) if f not in wanted]
        self._earlier_filters = set()
        if gone:
            log.info("unsubscribing from %d filters the broker's session still holds: %s", len(gone),
                     ", ".join(sorted(gone)))
            self._client.unsubscribe(gone)
            self._session_filters.difference_update(gone)
        self._write_session_file()
        # The broker's session holds the others: subscribing again would only repeat their retained messages.
        self._pending = set(self._send([f for f in wanted if f not in self._session_filters]))
        return not self._pending

    def on_suback(self, mid: int, codes: list[ReasonCode]) -> bool:
        """Note what the broker granted; True once no SUBSCRIBE sent on CONNACK waits any more."""
        filters = self._subscribing.pop(mid, [])
        for topic_filter, code in zip(filters, codes, strict=False):
            if code.is_failure:
                log.warning("broker refused the subscription to %s: %s", topic_filter, code)
            else:
                self._session_filters.add(topic_filter)
        if filters:
            self._write_session_file()
        self._pending.discard(mid)
        return not self._pending

    def subscribe_late(self) -> None:
        """Subscriptions added between CONNACK and the SUBACKs were not in the first SUBSCRIBEs. Their
        filter's retained messages may have gone by already, even if the filter was in them."""
        self._send(list(dict.fromkeys(s.filter for s in self.subs if s not in self._session_subs)))
        self._session_subs = set()

    def _read_session_file(self) -> set[str]:
        if self._session_file is None:
            return set()
        try:
            data = json.loads(self._session_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return set()
        except (OSError, ValueError) as exc:
            log.warning("cannot read %s, so filters of an earlier run may stay in the broker's session: %s",
                        self._session_file, exc)
            return set()
        mine = isinstance(data, dict) and data.get("client_id") == self.settings.client_id
        filters = data.get("filters") if mine else None
        return {f for f in filters if isinstance(f, str) and valid_filter(f)} if isinstance(filters, list) else set()

    def _write_session_file(self) -> None:
        """Keep the session's filters; a failure is logged, the session goes on."""
        path = self._session_file
        if path is None:
            return
        text = json.dumps({"client_id": self.settings.client_id, "filters": sorted(self._session_filters)})
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists() and path.read_text(encoding="utf-8") == text:
                return
            temporary = path.with_suffix(".tmp")
            temporary.write_text(text, encoding="utf-8")
            temporary.replace(path)
        except OSError as exc:
            log.warning("cannot write %s: %s", path, exc)

    # ---- the intake (paho's thread, and the gateway's at start and stop) -----------------------------

    def hold_intake(self) -> None:
        """Keep the messages that arrive from now on, unacknowledged, until ``open_intake``.

        The gateway holds the intake before it starts the bus, and opens it once every component has
        started, and so subscribed: a resumed session delivers what the broker kept as soon as it accepts
        the connection, and a message that found no subscription yet would be acknowledged and lost. The
        connection itself is not held up. QoS 1 and 2 messages are few meanwhile (the broker sends no
        more than its in-flight window unacknowledged); QoS 0 ones past ``EARLY_QOS0_MAX`` are dropped,
        as QoS 0 allows.
        """
        with self._intake:
            self._early = []

    def open_intake(self) -> None:
        """Hand out the messages kept since ``hold_intake``, in order, and every later one at once."""
        with self._intake:
            early, self._early = self._early or [], None
            for msg in early:
                self._take(msg)

    def close_intake(self) -> None:
        """Stop handing out messages; those that still arrive are not acknowledged.

        Called at shutdown before the components stop, so that nothing is acknowledged to the broker
        that no component will handle: a persistent session gets those messages again at the next
        start. The broker's session also keeps its subscriptions: none is unsubscribed from now on.
        """
        with self._intake:
            self._intake_open = False

    def on_message(self, msg: paho.MQTTMessage) -> None:
        # paho's manual_ack: the acknowledgement follows the hand-over, under the lock that
        # close_intake takes, so no message is acknowledged that was not handed out.
        with self._intake:
            if not self._intake_open:
                self.withheld += 1
                return  # not acknowledged: a persistent session delivers it again
            early = self._early
            if early is not None:
                if msg.qos or len(early) < EARLY_QOS0_MAX:
                    early.append(msg)
                return
            self._take(msg)

    def _take(self, msg: paho.MQTTMessage) -> None:
        try:
            self._dispatch(msg)
        finally:
            if msg.qos:
                self._client.ack(msg.mid, msg.qos)

    def _dispatch(self, msg: paho.MQTTMessage) -> None:
        topic = msg.topic
        subs = self._match_cache.get(topic)
        if subs is None:
            with self._lock:
                subs = tuple(s for s in self.subs if paho.topic_matches_sub(s.matches, topic))
                if len(self._match_cache) > MATCH_CACHE_MAX:
                    self._match_cache.clear()
                self._match_cache[topic] = subs
        if not subs:
            return
        if self._v5:
            ids = getattr(msg.properties, "SubscriptionIdentifier", None)
            if ids:  # this copy is for these subscriptions only
                subs = tuple(s for s in subs if s.id in ids)
                if not subs:
                    self._stale(topic, ids)
                    return
        retain = bool(msg.retain)
        message = Message(topic, bytes(msg.payload), retain, msg.qos)
        for sub in subs:
            if retain:
                # The broker sets retain only on what a SUBSCRIBE brings (MQTT-3.3.1-8/9), and each
                # one brings the retained messages again: a subscription that has this topic's, from
                # its own SUBSCRIBE or another one on the bus, is not given it twice.
                if topic in sub.retained_seen:
                    continue
                sub.retained_seen.add(topic)
            try:
                sub.callback(message)
            except Exception:
                log.exception("error handling message on %s", topic)

    def _stale(self, topic: str, ids: list[int]) -> None:
        # A subscription of an earlier run, kept in the broker's session, whose filter this run does not
        # have (the config changed, and the session file did not tell): its copies would duplicate what
        # the current filters receive.
        self.stale += 1
        if self.stale == 1:
            log.warning("ignoring messages for subscriptions of an earlier run (e.g. %s, identifier %s) that the "
                        "broker's session still holds; they end when the session does", topic, ids)
