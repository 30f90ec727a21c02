"""A line whose handling raises costs only that line: the lines read with it are still published."""

from __future__ import annotations

import logging

import gateway_rf12
import pytest

from gateway import hookimpl

pytestmark = pytest.mark.broker


class RawBytes:
    """A third-party node type with a bug: it returns the payload as ``bytes``, which no JSON state can carry.

    Decoding succeeds, so the decoder's guard does not catch it: publishing the state raises TypeError.
    """

    def decode(self, data: bytes) -> dict[str, bytes]:
        return {"payload": data}


class RawBytesPlugin:
    @hookimpl
    def gateway_rf12_decoders(self):
        return {"rawbytes": RawBytes()}


def test_a_line_whose_handling_raises_is_counted_and_the_rest_of_the_read_published(
        sim, gateway_factory, mqtt_watch, housebus_topics, caplog):
    base = housebus_topics.base
    gateway_factory({"rf12": {"port": sim.url, "info_interval": 0.2, "nodes": {"9": {"type": "rawbytes"}}}},
                    plugins=[("rf12", gateway_rf12), ("rawbytes", RawBytesPlugin())])
    mqtt_watch.wait_ready(base)
    mqtt_watch.wait_for(f"{base}/rf12/availability", lambda m: m.text == "online")
    sim.port.send(b"OK 5 1\r\nOK 9 7\r\nOK 6 2\r\nOK 7 3\r\n")  # one write: one read, as a burst from the radio is
    for node, data in ((5, 1), (6, 2), (7, 3)):
        assert mqtt_watch.wait_json(f"{base}/rf12/212_{node}") == {"node": node, "group": 212, "raw": [data]}
    info = mqtt_watch.wait_json(f"{base}/rf12/info", lambda i: i["counters"]["handler_errors"] == 1)
    assert info["counters"]["packets"] == 4
    (error,) = [r for r in caplog.records if r.name == "housebus.rf12" and r.levelno == logging.ERROR]
    assert "b'OK 9 7\\r'" in error.getMessage() and "handler_errors" in error.getMessage()
    assert error.exc_info is not None and error.exc_info[0] is TypeError
