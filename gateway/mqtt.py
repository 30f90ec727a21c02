"""The one MQTT connection of the gateway (paho-mqtt 2.x, callback API version 2).

Ordering and loss are handled here rather than left to paho:

* While the broker is away, publishes go to a bounded outbox (oldest dropped and counted).
  After a reconnect the outbox is flushed in order, but only once the SUBACK for our
  subscriptions is in: by then paho has re-sent the QoS>0 messages that were in flight when
  the connection dropped, which are older than anything in the outbox.
* Every retained publish is remembered and replayed after each reconnect, because a broker
  without persistence forgets retained messages when it restarts.
* ``publish`` refuses a topic the broker or paho would refuse, at the call site: queued and sent
  later from paho's thread, it would fail there instead. The flush logs and drops any item
  that still fails, so the network thread lives on.
* A subscription to a filter that is already subscribed sends SUBSCRIBE again, so the broker
  re-sends the filter's retained messages (MQTT 3.1.1 and 5.0, 3.8.4). Each subscription is
  handed a retained message of a topic at most once per session, so the older ones do not
  see those again.
* A QoS 1 or 2 message is acknowledged only once it has been handed to its subscriptions, and
  not at all after ``close_intake`` (shutdown): with a persistent session (``clean_start =
  false``, MQTT 5 ``session_expiry``) the broker delivers it again at the next start.
* When the broker kept the session, the SUBSCRIBEs it holds are not sent again, which would
  bring retained messages a second time; only filters added since are.
* Over MQTT 5 every filter is subscribed with a subscription identifier, and a message goes only
  to the subscriptions whose identifier it carries: a broker sends one copy per matching
  subscription (Mosquitto does), which matching by topic alone would hand to each of them.
"""

from __future__ import annotations

import importlib
import json
import logging
import ssl
import sys
import threading
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if "paho.mqtt.client" not in sys.modules and "dns.resolver" not in sys.modules:
    # paho imports dnspython when it is installed (another plugin's dependency may bring it), only for
    # connect_srv, which the gateway never calls: that import alone cost the idle gateway 2 MB. A None
    # in sys.modules makes paho's ``import dns.resolver`` fail at once; whoever imports it later gets it.
    sys.modules["dns.resolver"] = None  # type: ignore[assignment]
    try:
        importlib.import_module("paho.mqtt.client")
    finally:
        if "dns.resolver" in sys.modules and sys.modules["dns.resolver"] is None:
            del sys.modules["dns.resolver"]
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from gateway.config import MqttSettings
from gateway.errors import CommandError

log = logging.getLogger("housebus.mqtt")

ONLINE = "online"
OFFLINE = "offline"
RECONNECT_MIN_DELAY = 1
RECONNECT_MAX_DELAY = 30
MAX_TOPIC_BYTES = 65_535
# Messages paho may hold, unsent or unacknowledged, before components are held back (``hold``). paho
# keeps each one at about 2 KB until the broker's PUBACK, and a burst of serial readings publishes far
# faster than the broker acknowledges: unbounded, 10 000 readings left 20 MB that the allocator never
# gave back. Ten times paho's in-flight window (20): the link stays busy while a component is held.
BACKLOG_MAX = 200
EARLY_QOS0_MAX = 10_000  # QoS 0 messages kept while the components start (hold_intake)
BACKLOG_HOLD_MAX = 2.0  # seconds a component is held at most: a connection that stalls must not stop it

Payload = str | bytes | bytearray | int | float | dict[str, Any] | list[Any] | None


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


def encode(payload: Payload) -> bytes:
    """Bytes for a payload: dicts and lists become compact JSON, numbers their text."""
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        return payload.encode()
    if payload is None:
        return b""
    if isinstance(payload, bytearray):
        return bytes(payload)
    if isinstance(payload, bool | dict | list):
        return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return str(payload).encode()


def check_topic(topic: str) -> None:
    """Raise ``ValueError`` unless ``topic`` is a topic name a message can be published to.

    Not empty, no wildcard ``+`` or ``#``, no NUL, valid UTF-8 and at most 65 535 bytes encoded.
    """
    if not topic:
        raise ValueError("cannot publish to an empty topic")
    for char, what in (("+", "the wildcard '+'"), ("#", "the wildcard '#'"), ("\0", "a NUL character")):
        if char in topic:
            raise ValueError(f"cannot publish to topic {_shown(topic)}: it contains {what}")
    try:
        size = len(topic.encode())
    except UnicodeEncodeError:
        raise ValueError(f"cannot publish to topic {_shown(topic)}: it is not valid UTF-8 text") from None
    if size > MAX_TOPIC_BYTES:
        raise ValueError(f"cannot publish to topic {_shown(topic)}: {size} bytes, more than {MAX_TOPIC_BYTES}")


def _shown(topic: str) -> str:
    return repr(topic) if len(topic) <= 80 else f"{topic[:60]!r}... ({len(topic)} characters)"


SHARE_PREFIX = "$share/"
SUBSCRIPTION_ID_MAX = 268_435_455  # MQTT 5.0, 3.8.2.1.2


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


def _properties(packet_type: int, **values: int) -> Properties:
    properties = Properties(packet_type)  # type: ignore[no-untyped-call]
    for name, value in values.items():
        setattr(properties, name, value)
    return properties


class Subscription:
    """A topic filter and the callback it feeds; ``cancel()`` to stop receiving."""

    __slots__ = ("_bus", "callback", "filter", "id", "matches", "retained_seen")

    def __init__(self, bus: MqttBus, topic_filter: str, callback: Callable[[Message], None]) -> None:
        self._bus = bus
        self.filter = topic_filter  # what is subscribed
        self.matches = match_filter(topic_filter)  # what incoming topics are matched against
        self.id = subscription_id(topic_filter)  # what MQTT 5 messages for it carry
        self.callback = callback
        # Topics of the retained messages handed over in this connection; the network thread's alone.
        self.retained_seen: set[str] = set()

    def cancel(self) -> None:
        self._bus._unsubscribe(self)


class MqttBus:
    """Publishing, subscribing and connection state, shared by the core and all components.

    Args:
        settings: the ``[mqtt]`` section.
        state_topic: the availability topic; it carries the last will.
        session_file: where the filters of a persistent session (``clean_start = false``) are kept, so
            that the next run unsubscribes those its config no longer has. Left in the session, a shared
            one would keep taking its share of the group's messages, for nobody.
    """

    def __init__(self, settings: MqttSettings, state_topic: str, session_file: Path | None = None) -> None:
        self.settings = settings
        self.state_topic = state_topic
        self.dropped = 0
        self.on_connected: list[Callable[[], None]] = []
        self.on_down: list[Callable[[str], None]] = []  # told why, at each failed attempt (network thread)
        self._lock = threading.RLock()
        self._drained = threading.Condition(threading.Lock())  # a held component waits here for PUBACKs
        self._held = 0
        self._connected = False
        self._outbox: deque[tuple[str, bytes, int, bool]] = deque()
        self._retained: dict[str, tuple[bytes, int]] = {}
        self._subs: list[Subscription] = []
        # The subscriptions in the SUBSCRIBEs sent on CONNACK; _flush subscribes those added before their SUBACK.
        self._session_subs: set[Subscription] = set()
        self._session_filters: set[str] = set()  # filters the broker's session holds (SUBACK received)
        self._session_file = None if settings.clean_start else session_file
        self._earlier_filters = self._read_session_file()  # an earlier run's, until the first CONNACK
        self._subscribing: dict[int, list[str]] = {}  # SUBSCRIBEs awaiting their SUBACK, by message id
        self._pending: set[int] = set()  # those sent on CONNACK: the outbox waits for them
        self._intake = threading.Lock()  # held while a message is handed out and acknowledged
        self._intake_open = True
        self._early: list[paho.MQTTMessage] | None = None  # messages kept between hold_intake and open_intake
        self.session_present = False
        self.stale = 0  # messages for a subscription of an earlier run that this one does not have
        self.withheld = 0  # messages that arrived after close_intake, left unacknowledged
        self._match_cache: dict[str, tuple[Subscription, ...]] = {}
        self._down_logged = False
        self._stopping = False

        self._v5 = v5 = settings.protocol == "5"
        self._ids = v5  # subscription identifiers, unless the broker says it has none (CONNACK)
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=settings.client_id,
            protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
            clean_session=None if v5 else settings.clean_start,
            reconnect_on_failure=True,
            manual_ack=True,  # see _on_message
        )
        if settings.username is not None:
            password = settings.password.get_secret_value() if settings.password else None
            client.username_pw_set(settings.username, password)
        if settings.tls is not None:
            tls = settings.tls
            client.tls_set(
                ca_certs=str(tls.ca_certs) if tls.ca_certs else None,
                certfile=str(tls.certfile) if tls.certfile else None,
                keyfile=str(tls.keyfile) if tls.keyfile else None,
            )
            client.tls_insecure_set(tls.insecure)
        client.will_set(state_topic, OFFLINE, qos=1, retain=True)
        client.reconnect_delay_set(RECONNECT_MIN_DELAY, RECONNECT_MAX_DELAY)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        # No on_publish: hold() sets it while a component waits, so that PUBACKs cost nothing otherwise.
        self._client = client

    # ---- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background; publishing works at once and is queued until then."""
        s = self.settings
        log.info("connecting to %s:%s as %s", s.host, s.port, s.username or "anonymous client")
        if self._v5:
            properties = (_properties(PacketTypes.CONNECT, SessionExpiryInterval=s.session_expiry)
                          if s.session_expiry else None)
            # clean_start = true begins a new session at each start; reconnects then resume it while
            # the broker keeps it (session_expiry), so a network blip loses nothing either.
            self._client.connect_async(s.host, s.port, keepalive=s.keepalive, properties=properties,
                                       clean_start=paho.MQTT_CLEAN_START_FIRST_ONLY if s.clean_start else False)
        else:
            self._client.connect_async(s.host, s.port, keepalive=s.keepalive)
        self._client.loop_start()

    def hold_intake(self) -> None:
        """Keep the messages that arrive from now on, unacknowledged, until ``open_intake``.

        The gateway calls it before it starts the bus, and opens the intake once every component
        has started, and so subscribed: a resumed session (``clean_start = false``) delivers what the
        broker kept as soon as it accepts the connection, and a message that found no subscription
        yet would be acknowledged and lost. The connection itself is not held up. QoS 1 and 2 messages
        are few meanwhile (the broker sends no more than its in-flight window unacknowledged); QoS 0
        ones past ``EARLY_QOS0_MAX`` are dropped, as QoS 0 allows.
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

    def stop(self, timeout: float = 1.0) -> None:
        """Publish ``offline`` (when connected), disconnect and stop the network thread."""
        self._stopping = True
        if self._connected:
            info = self._client.publish(self.state_topic, OFFLINE, qos=1, retain=True)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError):
                log.debug("offline not confirmed by the broker before shutdown")
        self._client.disconnect()
        self._client.loop_stop()

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def network_alive(self) -> bool:
        """True while paho's network thread runs (it ends only by ``stop`` or a bug)."""
        thread = getattr(self._client, "_thread", None)  # paho has no public accessor
        return thread is not None and thread.is_alive()

    @property
    def queued(self) -> int:
        return len(self._outbox)

    @property
    def backlog(self) -> int:
        """Messages handed to paho and not yet sent (QoS 0) or not yet acknowledged by the broker (QoS 1, 2)."""
        client = self._client
        # paho has no public count; both are plain containers whose len() is safe from any thread.
        return max(len(getattr(client, "_out_messages", ())), len(getattr(client, "_out_packet", ())))

    def hold(self) -> None:
        """Wait while paho holds ``BACKLOG_MAX`` messages or more, until half of them are through.

        Components' workers call it before handling their next serial read, so that a
        component that publishes faster than the broker takes it is slowed down, and its serial
        data waits in the OS buffer, instead of piling up in paho. It never waits while the
        broker is away (the outbox bounds that case), on paho's own thread, or longer than
        ``BACKLOG_HOLD_MAX``.
        """
        # Once per serial read: the two lengths inline, rather than through ``backlog``.
        client = self._client
        if ((len(client._out_messages) < BACKLOG_MAX and len(client._out_packet) < BACKLOG_MAX)
                or not self._connected):
            return
        if threading.current_thread() is getattr(self._client, "_thread", None):
            return  # only paho's thread makes the backlog shrink
        with self._drained:
            self._held += 1
            # paho reads its callbacks under its own lock and calls them without it: no lock order to fear.
            client.on_publish = self._on_publish
            try:
                self._drained.wait_for(lambda: not self._connected or self.backlog < BACKLOG_MAX // 2,
                                       BACKLOG_HOLD_MAX)
            finally:
                self._held -= 1
                if not self._held:
                    client.on_publish = None

    def _on_publish(self, client: paho.Client, userdata: Any, mid: int, rc: ReasonCode, props: Any) -> None:
        # Per acknowledged message while a component is held (hold() installs it then).
        if self._held and self.backlog < BACKLOG_MAX // 2:
            with self._drained:
                self._drained.notify_all()

    # ---- publish / subscribe ---------------------------------------------------------

    def publish(self, topic: str, payload: Payload, qos: int | None = None, retain: bool = False) -> None:
        """Publish now, or queue until the broker is back. Never blocks on the network.

        Raises ``ValueError`` for a topic no message can be published to (see ``check_topic``).
        """
        # The hot path: a short ASCII topic passes after a few scans in C, and nothing is encoded.
        if (not topic.isascii() or not 0 < len(topic) <= MAX_TOPIC_BYTES
                or "+" in topic or "#" in topic or "\0" in topic):
            check_topic(topic)  # raises, unless a valid topic with non-ASCII characters
        data = encode(payload)
        q = self.settings.qos if qos is None else qos
        with self._lock:
            if retain:
                self._retained[topic] = (data, q)
            if self._connected:
                self._client.publish(topic, data, q, retain)
                return
            outbox = self._outbox
            if len(outbox) >= self.settings.queue_size:
                outbox.popleft()
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 1000 == 0:
                    log.warning("broker unreachable and queue full: %d oldest messages dropped", self.dropped)
            outbox.append((topic, data, q, retain))

    def subscribe(self, topic_filter: str, callback: Callable[[Message], None]) -> Subscription:
        """Call ``callback(message)`` on the network thread for every message matching the filter.

        The callback must return quickly; components get theirs run on their own worker.
        """
        if not valid_filter(topic_filter):
            raise ValueError(f"invalid topic filter: {topic_filter!r}")
        sub = Subscription(self, topic_filter, callback)
        with self._lock:
            self._subs.append(sub)
            self._match_cache.clear()
            if self._connected:
                # Also when the filter is subscribed already: only a SUBSCRIBE makes the broker
                # send its retained messages, which this subscription has not had yet.
                self._send_subscribe([topic_filter])
        return sub

    def _send_subscribe(self, filters: list[str]) -> list[int]:
        """SUBSCRIBE to ``filters`` (under ``_lock``); the message ids of the packets sent."""
        qos = int(self.settings.qos)
        if not self._ids:
            packets: list[tuple[list[str], Properties | None]] = [(filters, None)] if filters else []
        else:  # an identifier is per SUBSCRIBE packet, not per filter
            packets = [([f], _properties(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=subscription_id(f)))
                       for f in filters]
        mids = []
        for packet_filters, properties in packets:
            _, mid = self._client.subscribe([(f, qos) for f in packet_filters], properties=properties)
            if mid is not None:
                self._subscribing[mid] = packet_filters
                mids.append(mid)
        return mids

    def _unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if sub not in self._subs:
                return
            self._subs.remove(sub)
            self._match_cache.clear()
            # Not connected: the next CONNACK unsubscribes it, if the broker kept the session.
            if self._intake_open and self._connected and all(s.filter != sub.filter for s in self._subs):
                self._client.unsubscribe(sub.filter)
                self._session_filters.discard(sub.filter)
                self._write_session_file()

    # ---- paho callbacks (network thread) -----------------------------------------------

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, rc: ReasonCode, props: Any) -> None:
        if rc.is_failure:
            self._log_down(f"broker refused the connection: {rc}")
            return
        present = bool(getattr(flags, "session_present", False))
        log.info("connected to broker %s:%s%s", self.settings.host, self.settings.port,
                 ", session resumed" if present else "")
        self._down_logged = False
        if self._v5:
            self._ids = getattr(props, "SubscriptionIdentifierAvailable", 1) != 0
        client.publish(self.state_topic, ONLINE, qos=1, retain=True)
        with self._lock:
            self.session_present = present
            self._subscribing.clear()
            if not present:
                # A new session: the SUBSCRIBEs below bring every subscription its retained messages again.
                self._session_filters.clear()
                for sub in self._subs:
                    sub.retained_seen.clear()
            self._session_subs = set(self._subs)
            wanted = dict.fromkeys(s.filter for s in self._subs)
            # Cancelled while the broker was away, or left by an earlier run whose config had them.
            gone = [f for f in self._session_filters | (self._earlier_filters if present else set())
                    if f not in wanted]
            self._earlier_filters = set()
            if gone:
                log.info("unsubscribing from %d filters the broker's session still holds: %s", len(gone),
                         ", ".join(sorted(gone)))
                client.unsubscribe(gone)
                self._session_filters.difference_update(gone)
            self._write_session_file()
            # The broker's session holds the others: subscribing again would only repeat their retained messages.
            self._pending = set(self._send_subscribe([f for f in wanted if f not in self._session_filters]))
            done = not self._pending
        if done:
            self._flush()

    def _on_subscribe(self, client: paho.Client, userdata: Any, mid: int, codes: list[ReasonCode],
                      props: Any) -> None:
        with self._lock:
            filters = self._subscribing.pop(mid, [])
            for topic_filter, code in zip(filters, codes, strict=False):
                if code.is_failure:
                    log.warning("broker refused the subscription to %s: %s", topic_filter, code)
                else:
                    self._session_filters.add(topic_filter)
            if filters:
                self._write_session_file()
            self._pending.discard(mid)
            done = not self._connected and not self._pending
        if done:
            self._flush()

    def _flush(self) -> None:
        with self._lock:
            # Subscriptions added between CONNACK and now were not in the first SUBSCRIBE. Their
            # filter's retained messages may have gone by already, even if the filter was in it.
            late = list(dict.fromkeys(s.filter for s in self._subs if s not in self._session_subs))
            self._session_subs = set()
            self._send_subscribe(late)
            sent = 0
            # A failure here would end paho's network thread (we are in its callback), and with it
            # every reconnect: whatever paho refuses is logged and dropped instead.
            while self._outbox:
                topic, data, q, retain = self._outbox.popleft()
                if not retain:  # the latest retained value per topic is replayed below
                    try:
                        self._client.publish(topic, data, q, False)
                    except Exception as exc:
                        log.error("dropped a queued message to %s: %s", topic, exc)
                    else:
                        sent += 1
            for topic, (data, q) in list(self._retained.items()):
                if topic != self.state_topic:
                    try:
                        self._client.publish(topic, data, q, True)
                    except Exception as exc:
                        del self._retained[topic]
                        log.error("dropped the retained message of %s: %s", topic, exc)
            self._connected = True
        if sent:
            log.info("delivered %d messages queued while disconnected", sent)
        for callback in self.on_connected:
            try:
                callback()
            except Exception:
                log.exception("error in on-connect callback %s", callback)

    def _on_connect_fail(self, client: paho.Client, userdata: Any) -> None:
        # paho calls this only from its ``except OSError``, without passing the error, which tells a
        # refused port from a certificate the CA did not sign.
        error = sys.exc_info()[1]
        where = f"{self.settings.host}:{self.settings.port}"
        if isinstance(error, ssl.SSLError):
            self._log_down(f"TLS handshake with broker {where} failed: {error}")
        else:
            self._log_down(f"cannot reach broker {where}: {error}")

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any, rc: ReasonCode,
                       props: Any) -> None:
        with self._lock:
            was = self._connected
            self._connected = False
        with self._drained:
            self._drained.notify_all()  # a held component goes on: the outbox bounds what piles up now
        if self._stopping:
            return
        if was:
            self._log_down(f"lost connection to broker: {rc}")
        else:
            # E.g. a broker that wants a client certificate drops a TLS 1.3 client after the handshake.
            self._log_down(f"broker closed the connection before it was up: {rc}")

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
        filters = data.get("filters") if isinstance(data, dict) and data.get("client_id") == self.settings.client_id \
            else None
        return {f for f in filters if isinstance(f, str) and valid_filter(f)} if isinstance(filters, list) else set()

    def _write_session_file(self) -> None:
        """Keep the session's filters (under ``_lock``); a failure is logged, the session goes on."""
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

    def _stale(self, topic: str, ids: list[int]) -> None:
        # A subscription of an earlier run, kept in the broker's session, whose filter this run does not
        # have (the config changed): its copies would duplicate what the current filters receive.
        self.stale += 1
        if self.stale == 1:
            log.warning("ignoring messages for subscriptions of an earlier run (e.g. %s, identifier %s) that the "
                        "broker's session still holds; they end when the session does", topic, ids)

    def _log_down(self, message: str) -> None:
        """Log the first failure of an outage only, the rest at debug; tell ``on_down`` of each."""
        if self._down_logged:
            log.debug("%s", message)
        else:
            self._down_logged = True
            log.warning("%s; retrying with backoff up to %d s", message, RECONNECT_MAX_DELAY)
        for callback in self.on_down:
            try:
                callback(message)
            except Exception:
                log.exception("error in on-down callback %s", callback)

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
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
                subs = tuple(s for s in self._subs if paho.topic_matches_sub(s.matches, topic))
                if len(self._match_cache) > 4096:
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
