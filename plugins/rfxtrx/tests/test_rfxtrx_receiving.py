"""What the gateway publishes for the frames it hears: repeats dropped, changes kept, unknown frames
reported once each, and warnings that do not flood the log (gateway, real broker, simulator, ManualClock)."""

from __future__ import annotations

import logging

import pytest

from gateway.testing import wait_until

pytestmark = pytest.mark.broker

OREGON = "0a 52 02 11 70 02 00 a7 2d 00 89"  # 16.7 °C, 45 %, battery 9, rssi 8


def test_a_change_in_any_byte_of_a_reading_is_published_at_once_and_only_repeats_are_dropped(
        sim, start_on_clock, mqtt_watch, housebus_topics):
    base = housebus_topics.base
    component, _ = start_on_clock(sim)
    at = mqtt_watch.mark()
    for frame in (
        "0b 11 00 01 01 23 45 67 05 02 08 70",  # the dimmer's remote: level 8
        "0b 11 00 02 01 23 45 67 05 02 08 60",  # its repeat: only the sequence number and the rssi differ
        "0b 11 00 03 01 23 45 67 05 02 09 70",  # level 9: the byte before the last
        OREGON,
        "0a 52 02 12 70 02 00 a7 2d 00 79",  # repeat
        "0a 52 02 13 70 02 00 a7 2d 00 78",  # the battery nibble of the last byte went down
        "0a 52 02 14 70 02 00 a7 2d 00 68",  # repeat (another rssi)
        "08 20 05 01 d3 dc 54 04 79",  # frames are handled in order: once this is out, so are the others
    ):
        sim.inject(frame)
    mqtt_watch.wait_json(f"{base}/rfxtrx/20_05_d3dc54", after=at)
    assert [m.json()["level"] for m in mqtt_watch.received(f"{base}/rfxtrx/dimmer", at)] == [8, 9]
    assert [m.json()["battery_level"] for m in mqtt_watch.received(f"{base}/rfxtrx/garden", at)] == [9, 8]
    assert component.counters.duplicates == 3


def test_the_dedupe_window_ends_exactly_its_length_after_the_first_reading(sim, start_on_clock, mqtt_watch,
                                                                           housebus_topics):
    base = housebus_topics.base
    component, clock = start_on_clock(sim, dedupe_window=1.0)
    unknown = "0a 5d 7f 11 70 02 00 a7 2d 00 89"
    at = mqtt_watch.mark()
    sim.inject(OREGON)
    sim.inject(unknown)
    mqtt_watch.wait_for(f"{base}/rfxtrx/unknown", after=at)
    clock.advance(1.0)
    later = mqtt_watch.mark()
    sim.inject(OREGON)
    sim.inject(unknown)
    mqtt_watch.wait_for(f"{base}/rfxtrx/unknown", after=later)
    mqtt_watch.wait_for(f"{base}/rfxtrx/garden", after=later)
    assert len(mqtt_watch.received(f"{base}/rfxtrx/garden", at)) == 2
    assert len(mqtt_watch.received(f"{base}/rfxtrx/unknown", at)) == 2
    assert component.counters.duplicates == 0


def test_unknown_frames_that_differ_in_any_byte_but_the_sequence_number_are_each_published(
        sim, start_on_clock, mqtt_watch, housebus_topics):
    base = housebus_topics.base
    component, _ = start_on_clock(sim)
    frames = ["0a 5d 7f 11 70 02 00 a7 2d 00 89",
              "0a 5d 7f 12 70 02 00 a7 2d 00 89",  # a repeat: dropped
              "0a 58 7f 13 70 02 00 a7 2d 00 89",  # another packet type
              "0a 58 7e 14 70 02 00 a7 2d 00 89",  # another subtype
              "0a 58 7e 15 71 02 00 a7 2d 00 89",  # the first byte after the sequence number
              "0a 58 7e 16 71 02 00 a7 2d 00 88"]  # the last byte
    at = mqtt_watch.mark()
    for frame in frames:
        sim.inject(frame)
    last = "".join(frames[-1].split())
    mqtt_watch.wait_json(f"{base}/rfxtrx/unknown", lambda u: u["raw"] == last, after=at)
    published = [m.json()["raw"] for m in mqtt_watch.received(f"{base}/rfxtrx/unknown", at)]
    assert published == ["".join(f.split()) for i, f in enumerate(frames) if i != 1]
    assert (component.counters.unknown, component.counters.duplicates) == (5, 1)


def test_each_kind_of_unknown_frame_is_warned_about_once_then_logged_at_debug(sim, start_on_clock, mqtt_watch,
                                                                              housebus_topics, caplog):
    """A noisy band must not flood the log, but the first frame of each kind is worth a warning."""
    base = housebus_topics.base
    caplog.set_level(logging.DEBUG, logger="housebus")
    start_on_clock(sim)
    frames = ["0a 5d 7f 11 70 02 00 a7 2d 00 89", "0a 5d 7f 12 71 02 00 a7 2d 00 89",
              "0a 58 7f 13 70 02 00 a7 2d 00 89"]
    at = mqtt_watch.mark()
    for frame in frames:
        sim.inject(frame)
    mqtt_watch.wait_json(f"{base}/rfxtrx/unknown", lambda u: u["packet_type"] == "58", after=at)
    logged = [(r.levelno, r.getMessage()) for r in caplog.records if "published on" in r.getMessage()]
    assert logged == [
        (logging.WARNING, f"unknown packet type 0x5d subtype 0x7f (frame 0a5d7f11700200a72d0089); published on "
                          f"{base}/rfxtrx/unknown"),
        (logging.DEBUG, f"unknown packet type 0x5d subtype 0x7f (frame 0a5d7f12710200a72d0089); published on "
                        f"{base}/rfxtrx/unknown"),
        (logging.WARNING, f"unknown packet type 0x58 subtype 0x7f (frame 0a587f13700200a72d0089); published on "
                          f"{base}/rfxtrx/unknown"),
    ]


def test_the_info_is_published_when_a_counter_changes_and_not_otherwise(sim, start_on_clock, mqtt_watch,
                                                                        housebus_topics, settle):
    base = housebus_topics.base
    component, clock = start_on_clock(sim)  # info_interval 0.2 s
    interval = component.config.info_interval
    mqtt_watch.wait_json(f"{base}/rfxtrx/info", lambda i: i["state"] == "ready")
    at = mqtt_watch.mark()
    for _ in range(3):
        clock.advance(interval)
        settle(component)
    assert mqtt_watch.received(f"{base}/rfxtrx/info", at) == []
    sim.inject(OREGON[:14])  # half a frame, dropped when the next data comes after the reader's timeout
    wait_until(lambda: component.reader.pending == 5, what="the half frame read")
    clock.advance(1.0)
    sim.inject(OREGON)
    mqtt_watch.wait_json(f"{base}/rfxtrx/garden", after=at)
    clock.advance(interval)
    info = mqtt_watch.wait_json(f"{base}/rfxtrx/info", after=at)
    assert (info["counters"]["frames"], info["counters"]["partial_timeouts"]) == (3, 1)  # with status, started
    for _ in range(3):
        clock.advance(interval)
        settle(component)
    assert len(mqtt_watch.received(f"{base}/rfxtrx/info", at)) == 1


def test_a_configured_off_delay_reaches_home_assistant(sim, start_on_clock, mqtt_watch, discovery_topic):
    start_on_clock(sim, devices={"20_05_d3dc54": {"name": "hall_pir", "off_delay": 5}})
    motion = mqtt_watch.wait_json(discovery_topic("20_05_d3dc54"))["components"]["motion"]
    assert motion["device_class"] == "motion" and motion["off_delay"] == 5
