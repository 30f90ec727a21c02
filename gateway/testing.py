"""Pytest fixtures for housebus and its plugins (registered as a ``pytest11`` plugin).

* ``mqtt_broker``: one real Mosquitto per test session, started from the shipped config.
* ``housebus_topics``: a base topic and discovery prefix unique to the test.
* ``mqtt_watch``: a real MQTT client subscribed to the test's topics, with ``wait_for``.
* ``gateway_factory``: builds and starts an in-process gateway against the broker.

Heavy imports stay inside the fixtures: this module is imported before coverage starts.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from gateway.app import Gateway
    from gateway.broker import Broker
    from gateway.clock import Clock
    from gateway.plugins import PluginSet

DEFAULT_TIMEOUT = 10.0



def pytest_configure(config: pytest.Config) -> None:
    """Plugin authors' suites know the marker too, even with ``--strict-markers``."""
    config.addinivalue_line("markers", "broker: the test starts or uses a real Mosquitto broker")

@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool
    qos: int

    @property
    def text(self) -> str:
        return self.payload.decode()

    def json(self) -> Any:
        return json.loads(self.payload)


class MqttWatch:
    """A plain paho client that records every message on its subscriptions.

    Args:
        broker: the broker to use.
        username: which shipped user to log in as (default: the tests' superuser).
    """

    def __init__(self, broker: Broker, username: str | None = None, password: str | None = None,
                 protocol: str = "3.1.1", anonymous: bool = False, client_id: str | None = None,
                 persistent: bool = False) -> None:
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        from gateway.broker import TEST_SUPERUSER

        self.broker = broker
        self.messages: list[Received] = []
        self._cond = threading.Condition()
        self._connected = threading.Event()
        self.connect_result: Any = None
        self._acks: dict[int, threading.Event] = {}
        v5 = protocol == "5"
        # A persistent session makes the broker keep messages for this client while it is
        # away, e.g. across a broker restart.
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"watch-{uuid.uuid4().hex[:8]}",
                                  protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
                                  clean_session=None if v5 else not persistent)
        self.client.reconnect_delay_set(1, 2)
        if not anonymous:
            user = username or TEST_SUPERUSER
            self.client.username_pw_set(user, password if password is not None else broker.passwords.get(user))
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe

    def connect(self, timeout: float = DEFAULT_TIMEOUT) -> Any:
        """Connect and return the CONNACK reason code (check ``.is_failure``)."""
        self.client.connect(self.broker.host, self.broker.port)
        self.client.loop_start()
        if not self._connected.wait(timeout):
            raise TimeoutError("no CONNACK from the broker")
        return self.connect_result

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        self.connect_result = rc
        self._connected.set()

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, codes: Any, props: Any) -> None:
        self.sub_codes = codes
        event = self._acks.setdefault(mid, threading.Event())
        event.set()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        with self._cond:
            self.messages.append(Received(msg.topic, msg.payload, bool(msg.retain), msg.qos))
            self._cond.notify_all()

    def subscribe(self, *filters: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Subscribe and wait for the SUBACK."""
        rc, mid = self.client.subscribe([(f, 1) for f in filters])
        if mid is None:  # paho sends nothing while the client is not connected
            from paho.mqtt.client import error_string

            raise ConnectionError(f"could not subscribe to {filters}: {error_string(rc)}")
        event = self._acks.setdefault(mid, threading.Event())
        if not event.wait(timeout):
            raise TimeoutError(f"no SUBACK for {filters}")

    def publish(self, topic: str, payload: Any = b"", *, retain: bool = False, qos: int = 1,
                timeout: float = DEFAULT_TIMEOUT) -> None:
        """Publish (dicts and lists as JSON) and wait until the broker has it."""
        if isinstance(payload, dict | list):
            payload = json.dumps(payload)
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(timeout)

    def mark(self) -> int:
        """A position in ``messages``; pass it as ``after`` to wait only for newer messages."""
        with self._cond:
            return len(self.messages)

    def received(self, topic_filter: str, after: int = 0) -> list[Received]:
        from paho.mqtt.client import topic_matches_sub

        with self._cond:
            return [m for m in self.messages[after:] if topic_matches_sub(topic_filter, m.topic)]

    def wait_for(self, topic_filter: str, predicate: Callable[[Received], bool] | None = None, *,
                 after: int = 0, timeout: float = DEFAULT_TIMEOUT) -> Received:
        """The first message (from index ``after`` on) matching the filter and ``predicate``."""
        from paho.mqtt.client import topic_matches_sub

        deadline = time.monotonic() + timeout
        index = after
        with self._cond:
            while True:
                while index < len(self.messages):
                    m = self.messages[index]
                    index += 1
                    if topic_matches_sub(topic_filter, m.topic) and (predicate is None or predicate(m)):
                        return m
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [f"{m.topic} {m.payload[:200]!r}" for m in self.messages[after:]][-30:]
                    raise TimeoutError(f"no message on {topic_filter} within {timeout} s; last seen:\n"
                                       + "\n".join(seen))
                self._cond.wait(remaining)

    def wait_json(self, topic_filter: str, predicate: Callable[[Any], bool] | None = None, *,
                  after: int = 0, timeout: float = DEFAULT_TIMEOUT) -> Any:
        """Like ``wait_for`` on JSON payloads; ``predicate`` gets the decoded payload."""

        def match(m: Received) -> bool:
            try:
                data = m.json()
            except ValueError:
                return False
            return predicate is None or bool(predicate(data))

        return self.wait_for(topic_filter, match, after=after, timeout=timeout).json()

    def wait_ready(self, base_topic: str, *, after: int = 0, timeout: float = DEFAULT_TIMEOUT) -> Any:
        """Wait for the gateway at ``base_topic`` to be connected with its components started.

        ``bridge/info`` is published after the gateway's subscriptions are made, so once it
        arrives, commands published by this client reach the gateway.
        """
        return self.wait_json(f"{base_topic}/bridge/info", _all_started, after=after, timeout=timeout)


class Inbox:
    """A subscription callback for ``MqttBus.subscribe`` that keeps what it is given (called on paho's thread)."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self._lock = threading.Lock()

    def __call__(self, message: Any) -> None:
        with self._lock:
            self.messages.append(message)

    def payloads(self) -> list[bytes]:
        with self._lock:
            return [m.payload for m in self.messages]


def wait_until(predicate: Callable[[], bool], timeout: float = DEFAULT_TIMEOUT, what: str = "condition") -> None:
    """Poll ``predicate`` until it is true; for state that sends no event (use ``wait_for`` when one does)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout} s")
        time.sleep(0.01)


def _all_started(info: Any) -> bool:
    states = [s for p in info.get("plugins", []) for s in p.get("components", {}).values()]
    return "starting" not in states


@dataclass(frozen=True)
class Topics:
    """Topics of one test, so tests on one broker never see each other's retained messages."""

    base: str
    prefix: str

    @property
    def ha_status(self) -> str:
        return f"{self.prefix}/status"


@pytest.fixture(scope="session")
def mqtt_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A Mosquitto broker started from the shipped ``mosquitto/`` config on a free port."""
    broker = start_broker(tmp_path_factory.mktemp("mosquitto"))
    yield broker
    broker.stop()


def start_broker(workdir: Path) -> Broker:
    """A broker from the shipped config, its files in ``workdir``; the test fails if it cannot start."""
    from gateway.broker import Broker, BrokerError

    try:
        broker = Broker(workdir)
        broker.start()
    except BrokerError as exc:
        pytest.fail(str(exc))
    return broker


@pytest.fixture
def housebus_topics(request: pytest.FixtureRequest) -> Topics:
    tag = f"{request.node.name[:40]}-{uuid.uuid4().hex[:6]}".replace("/", "_").replace("[", "_").replace("]", "")
    for ch in "+#":
        tag = tag.replace(ch, "_")
    return Topics(base=f"housebus/t/{tag}", prefix=f"homeassistant/t/{tag}")


@pytest.fixture
def mqtt_watch(mqtt_broker: Broker, housebus_topics: Topics) -> Iterator[MqttWatch]:
    """A client subscribed to the test's base topic and discovery prefix."""
    watch = MqttWatch(mqtt_broker)
    watch.connect()
    watch.subscribe(f"{housebus_topics.base}/#", f"{housebus_topics.prefix}/#")
    yield watch
    watch.close()


def gateway_config(broker: Broker, topics: Topics, data_dir: Path, sections: dict[str, Any] | None = None,
                   *, mqtt: dict[str, Any] | None = None, homeassistant: dict[str, Any] | None = None,
                   user: str = "housebus") -> dict[str, Any]:
    """A config (as parsed TOML) for a gateway on the test broker, logging in as ``user``.

    ``[mqtt] last_seen`` is off unless ``mqtt`` turns it on, so that tests can compare whole
    states; the product's default adds the receive time to every state.
    """
    return {
        "mqtt": {
            "host": broker.host,
            "port": broker.port,
            "username": user,
            "password_file": str(broker.password_file_for(user)),
            "base_topic": topics.base,
            "client_id": f"gw-{uuid.uuid4().hex[:8]}",
            "last_seen": "off",
            **(mqtt or {}),
        },
        "homeassistant": {"prefix": topics.prefix, "status_topic": topics.ha_status, **(homeassistant or {})},
        "data_dir": str(data_dir),
        **(sections or {}),
    }


@pytest.fixture
def gateway_factory(mqtt_broker: Broker, housebus_topics: Topics, tmp_path: Path) -> Iterator[
        Callable[..., Gateway]]:
    """``make(sections, plugins=..., mqtt=..., clock=...)`` -> a started in-process gateway.

    ``plugins`` is a ``PluginSet``, or a list of ``(name, plugin)`` pairs to register
    instead of the installed entry points; by default the installed plugins are loaded.
    """
    from gateway.app import Gateway
    from gateway.config import validate
    from gateway.plugins import PluginSet, load_plugins

    made: list[Gateway] = []

    def make(sections: dict[str, Any] | None = None, *, plugins: PluginSet | list[tuple[str, object]] | None = None,
             mqtt: dict[str, Any] | None = None, homeassistant: dict[str, Any] | None = None,
             clock: Clock | None = None, start: bool = True) -> Gateway:
        if plugins is None:
            plugins = load_plugins()
        elif not isinstance(plugins, PluginSet):
            plugins = load_plugins(plugins, entry_points=False)
        raw = gateway_config(mqtt_broker, housebus_topics, tmp_path / "data", sections, mqtt=mqtt,
                             homeassistant=homeassistant)
        config = validate(Path("test.toml"), raw, plugins.models(), plugins.unavailable())
        gateway = Gateway(config, plugins, clock=clock)
        made.append(gateway)
        if start:
            gateway.start()
        return gateway

    yield make
    for gateway in made:
        gateway.stop()
