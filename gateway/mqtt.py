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

The receiving side (subscriptions, the broker's session, acknowledgements) is in
``gateway.subscriptions``.
"""

from __future__ import annotations

import json
import logging
import ssl
import sys
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from gateway._paho import paho, properties
from gateway.config import MqttSettings
from gateway.subscriptions import (
    SHARE_PREFIX,
    Message,
    Subscription,
    Subscriptions,
    match_filter,
    subscription_id,
    valid_filter,
)

__all__ = ["SHARE_PREFIX", "Message", "MqttBus", "Payload", "Subscription", "check_topic", "encode",
           "match_filter", "subscription_id", "valid_filter"]

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
BACKLOG_HOLD_MAX = 2.0  # seconds a component is held at most: a connection that stalls must not stop it

Payload = str | bytes | bytearray | int | float | dict[str, Any] | list[Any] | None


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
        self._down_logged = False
        self._stopping = False

        self._v5 = v5 = settings.protocol == "5"
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=settings.client_id,
            protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
            clean_session=None if v5 else settings.clean_start,
            reconnect_on_failure=True,
            manual_ack=True,  # see gateway.subscriptions
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
        self.subscriptions = Subscriptions(client, settings, self._lock, session_file)
        # The gateway's start and stop (see there).
        self.hold_intake = self.subscriptions.hold_intake
        self.open_intake = self.subscriptions.open_intake
        self.close_intake = self.subscriptions.close_intake

    # ---- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background; publishing works at once and is queued until then."""
        s = self.settings
        log.info("connecting to %s:%s as %s", s.host, s.port, s.username or "anonymous client")
        if self._v5:
            props = properties(PacketTypes.CONNECT, SessionExpiryInterval=s.session_expiry) if s.session_expiry \
                else None
            # clean_start = true begins a new session at each start; reconnects then resume it while
            # the broker keeps it (session_expiry), so a network blip loses nothing either.
            self._client.connect_async(s.host, s.port, keepalive=s.keepalive, properties=props,
                                       clean_start=paho.MQTT_CLEAN_START_FIRST_ONLY if s.clean_start else False)
        else:
            self._client.connect_async(s.host, s.port, keepalive=s.keepalive)
        self._client.loop_start()

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
    def session_present(self) -> bool:
        """Whether the broker still had the session at the last connect."""
        return self.subscriptions.session_present

    @property
    def withheld(self) -> int:
        """Messages that arrived after ``close_intake``, left unacknowledged for the next start."""
        return self.subscriptions.withheld

    @property
    def stale(self) -> int:
        """Messages for a subscription of an earlier run that this one does not have (ignored)."""
        return self.subscriptions.stale

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
        sub = Subscription(topic_filter, callback, self._unsubscribe)
        with self._lock:
            self.subscriptions.add(sub, self._connected)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self.subscriptions.remove(sub, self._connected)

    # ---- paho callbacks (network thread) -----------------------------------------------

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, rc: ReasonCode, props: Any) -> None:
        if rc.is_failure:
            self._log_down(f"broker refused the connection: {rc}")
            return
        present = bool(getattr(flags, "session_present", False))
        log.info("connected to broker %s:%s%s", self.settings.host, self.settings.port,
                 ", session resumed" if present else "")
        self._down_logged = False
        client.publish(self.state_topic, ONLINE, qos=1, retain=True)
        with self._lock:
            done = self.subscriptions.on_connect(present, props)
        if done:
            self._flush()

    def _on_subscribe(self, client: paho.Client, userdata: Any, mid: int, codes: list[ReasonCode],
                      props: Any) -> None:
        with self._lock:
            done = self.subscriptions.on_suback(mid, codes) and not self._connected
        if done:
            self._flush()

    def _flush(self) -> None:
        with self._lock:
            self.subscriptions.subscribe_late()
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
        self.subscriptions.on_message(msg)
