"""A frame whose handling raises costs only that frame: the frames read with it are still published."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from gateway_rfxtrx.component import Rfxtrx
from gateway_rfxtrx.packets import Reading
from gateway_rfxtrx.simulator import temp_hum_frame

from gateway import Component, hookimpl

pytestmark = pytest.mark.broker

BROKEN = 0x7003  # the sensor whose readings the planted bug cannot take


class BuggyRfxtrx(Rfxtrx):
    """The real component with a bug planted in its reading handler: readings of one sensor raise.

    No frame makes the real handler raise that we know of (the framer passes only frames whose length suits
    their type, and each decoder stays within that length), so the bug has to be planted to test the guard.
    """

    def _reading(self, reading: Reading, frame: bytes, now: float) -> None:
        if reading.address == BROKEN:
            raise RuntimeError("planted bug")
        super()._reading(reading, frame, now)


class BuggyPlugin:
    @hookimpl
    def gateway_register_components(self) -> list[type[Component]]:
        return [BuggyRfxtrx]


def test_a_frame_whose_handling_raises_is_counted_and_the_rest_of_the_read_published(
        sim, gateway_factory, mqtt_watch, housebus_topics, caplog):
    base = housebus_topics.base
    gateway_factory({"rfxtrx": {"port": sim.url, "info_interval": 0.2}}, plugins=[("rfxtrx", BuggyPlugin())])
    mqtt_watch.wait_ready(base)
    mqtt_watch.wait_for(f"{base}/rfxtrx/availability", lambda m: m.text == "online")
    good = (0x7002, 0x7004, 0x7005)
    frames = [temp_hum_frame(address, 20.5, 50, seq=i) for i, address in enumerate((good[0], BROKEN, *good[1:]))]
    sim.inject(b"".join(frames))  # one write: one read, as a burst from the stick is
    for address in good:
        state: Any = mqtt_watch.wait_json(f"{base}/rfxtrx/52_02_{address:04x}")
        assert (state["temperature"], state["humidity"]) == (20.5, 50)
    info = mqtt_watch.wait_json(f"{base}/rfxtrx/info", lambda i: i["counters"]["handler_errors"] == 1)
    assert info["counters"]["frames"] >= 4
    (error,) = [r for r in caplog.records if r.name == "housebus.rfxtrx" and r.levelno == logging.ERROR]
    assert frames[1].hex() in error.getMessage() and "handler_errors" in error.getMessage()
    assert error.exc_info is not None and error.exc_info[0] is RuntimeError


def test_a_sensor_that_keeps_breaking_the_handler_logs_one_traceback_as_an_error_then_debug(
        sim, gateway_factory, mqtt_watch, housebus_topics, caplog):
    caplog.set_level(logging.DEBUG, logger="housebus.rfxtrx")
    base = housebus_topics.base
    gateway_factory({"rfxtrx": {"port": sim.url, "info_interval": 0.2}}, plugins=[("rfxtrx", BuggyPlugin())])
    mqtt_watch.wait_ready(base)
    mqtt_watch.wait_for(f"{base}/rfxtrx/availability", lambda m: m.text == "online")
    for seq in range(3):  # the sensor sends every minute or so
        sim.inject(temp_hum_frame(BROKEN, 20.5 + seq, 50, seq=seq))
    sim.inject(temp_hum_frame(0x7002, 20.5, 50))  # frames are handled in order: once this is out, so are those
    mqtt_watch.wait_json(f"{base}/rfxtrx/52_02_7002")
    mqtt_watch.wait_json(f"{base}/rfxtrx/info", lambda i: i["counters"]["handler_errors"] == 3)
    bugs = [r.levelno for r in caplog.records if r.name == "housebus.rfxtrx" and r.exc_info
            and r.exc_info[0] is RuntimeError]
    assert bugs == [logging.ERROR, logging.DEBUG, logging.DEBUG]
