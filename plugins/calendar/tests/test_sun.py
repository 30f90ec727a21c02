"""[sun] end to end: a gateway on the real broker, a manual clock, and astral's own figures to compare with."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import gateway_calendar
import pytest
from astral import Observer
from astral import sun as astral_sun
from gateway_calendar.sun import JUMP_CHECK, REFRESH

from gateway import Component, ConfigError, ConfigModel, ManualClock, hookimpl
from gateway.config import validate
from gateway.plugins import load_plugins
from gateway.testing import MqttWatch, Topics

pytestmark = pytest.mark.broker

LONDON = {"latitude": 51.5, "longitude": -0.12}
NORTH = {"latitude": 69.9, "longitude": 18.96}  # north of Tromsø: on 25 November 2024 its sun shows for 13 minutes
TROMSO = {"latitude": 69.65, "longitude": 18.96}
EQUINOX = date(2024, 3, 20)
EVENTS = ("dawn", "sunrise", "noon", "sunset", "dusk")


def observer(place: dict[str, float]) -> Observer:
    return Observer(place["latitude"], place["longitude"], 0.0)


def astral_at(name: str, place: dict[str, float], day: date) -> datetime:
    """astral's time of one event on one (UTC) day."""
    at: datetime = getattr(astral_sun, name)(observer(place), day, tzinfo=UTC)
    return at


def astral_first_after(name: str, place: dict[str, float], after: datetime, days: int = 60) -> datetime:
    """astral's first ``name`` after ``after``, asking it day by day; ValueError means none that day."""
    for n in range(-1, days):
        try:
            at = astral_at(name, place, after.date() + timedelta(days=n))
        except ValueError:
            continue
        if at > after:
            return at
    raise AssertionError(f"astral has no {name} within {days} days of {after}")


def parse(text: str) -> datetime:
    when = datetime.fromisoformat(text)
    assert when.tzinfo is not None, f"{text} has no UTC offset"
    return when


def same_second(text: str, expected: datetime) -> bool:
    return abs((parse(text) - expected).total_seconds()) < 1


class SunRig:
    """A gateway with ``[sun]`` on a manual clock, and what it publishes."""

    def __init__(self, watch: MqttWatch, base: str, clock: ManualClock, place: dict[str, float]) -> None:
        self.watch, self.base, self.clock, self.place = watch, base, clock, place
        self.state_topic, self.event_topic = f"{base}/sun", f"{base}/sun/event"

    @property
    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.time(), UTC)

    def state_at(self, when: datetime, *, after: int = 0) -> dict[str, Any]:
        """The state computed at ``when``: its elevation and azimuth are astral's for that instant."""
        elevation = round(astral_sun.elevation(observer(self.place), when), 2)
        azimuth = round(astral_sun.azimuth(observer(self.place), when), 2)
        state: dict[str, Any] = self.watch.wait_json(
            self.state_topic, lambda s: s.get("elevation") == elevation and s.get("azimuth") == azimuth, after=after)
        return state

    def advance_to(self, when: datetime) -> None:
        self.clock.advance((when - self.now).total_seconds())

    def events(self, after: int = 0) -> list[dict[str, Any]]:
        return [m.json() for m in self.watch.received(self.event_topic, after)]


@pytest.fixture
def sun(gateway_factory: Callable[..., Any], mqtt_watch: MqttWatch,
        housebus_topics: Topics) -> Callable[..., tuple[SunRig, dict[str, Any]]]:
    """``sun(place, start)`` -> the rig and the state published at the start."""

    def make(place: dict[str, float], start: datetime) -> tuple[SunRig, dict[str, Any]]:
        clock = ManualClock(start)
        rig = SunRig(mqtt_watch, housebus_topics.base, clock, place)
        mark = mqtt_watch.mark()
        gateway_factory({"sun": place}, plugins=[("calendar", gateway_calendar)], clock=clock)
        return rig, rig.state_at(start, after=mark)

    return make


# ---- the state against astral ------------------------------------------------------------------------------


def test_london_state_has_astrals_times_and_position_and_is_retained(sun, mqtt_broker):
    start = datetime(2024, 3, 20, 0, 0, tzinfo=UTC)
    rig, state = sun(LONDON, start)
    assert set(state) == {"state", "elevation", "azimuth", *(f"next_{name}" for name in EVENTS)}
    assert state["state"] == "below_horizon"
    for name in EVENTS:
        assert same_second(state[f"next_{name}"], astral_at(name, LONDON, EQUINOX)), name
    assert state["elevation"] == round(astral_sun.elevation(observer(LONDON), start), 2) < -30

    # Retained, and the events are not: a client that comes later gets the state alone.
    late = MqttWatch(mqtt_broker)
    late.connect()
    try:
        late.subscribe(rig.event_topic)
        late.subscribe(rig.state_topic)  # its retained message follows any the first subscription had
        kept = late.wait_for(rig.state_topic)
        assert kept.retain and kept.json() == state
        assert late.received(rig.event_topic) == []
    finally:
        late.close()


def test_tromso_in_june_is_above_the_horizon_until_a_sunset_late_in_july(sun):
    start = datetime(2024, 6, 21, 0, 0, tzinfo=UTC)
    rig, state = sun(TROMSO, start)
    assert state["state"] == "above_horizon"
    sunset = astral_first_after("sunset", TROMSO, start)
    assert date(2024, 7, 20) <= sunset.date() <= date(2024, 7, 31)
    assert same_second(state["next_sunset"], sunset)
    assert same_second(state["next_sunrise"], astral_first_after("sunrise", TROMSO, start))
    assert parse(state["next_sunrise"]) > parse(state["next_sunset"])
    assert parse(state["next_dawn"]).month == 8  # the sun first goes 6° below in August
    assert same_second(state["next_noon"], astral_at("noon", TROMSO, start.date()))

    # The whole polar day: noon is the only event, nothing raises, and the state stays up.
    mark = rig.watch.mark()
    rig.advance_to(parse(state["next_noon"]) + timedelta(seconds=1))
    assert rig.watch.wait_json(rig.event_topic, after=mark)["event"] == "noon"
    end = start + timedelta(days=1)
    rig.advance_to(end)
    assert rig.state_at(end, after=mark)["state"] == "above_horizon"
    assert [e["event"] for e in rig.events(mark)] == ["noon"]


def test_tromso_in_december_is_below_the_horizon_until_a_sunrise_in_mid_january(sun):
    start = datetime(2024, 12, 21, 0, 0, tzinfo=UTC)
    rig, state = sun(TROMSO, start)
    assert state["state"] == "below_horizon"
    sunrise = astral_first_after("sunrise", TROMSO, start)
    assert date(2025, 1, 10) <= sunrise.date() <= date(2025, 1, 20)
    assert same_second(state["next_sunrise"], sunrise)
    assert same_second(state["next_sunset"], astral_first_after("sunset", TROMSO, start))
    # Civil twilight still comes: dawn and dusk are today's.
    assert same_second(state["next_dawn"], astral_at("dawn", TROMSO, start.date()))
    assert same_second(state["next_dusk"], astral_at("dusk", TROMSO, start.date()))

    mark = rig.watch.mark()
    for name in ("dawn", "noon", "dusk"):
        rig.advance_to(astral_at(name, TROMSO, start.date()) + timedelta(seconds=1))
        rig.watch.wait_json(rig.event_topic, lambda e, name=name: e["event"] == name, after=mark)
    end = start + timedelta(days=1)
    rig.advance_to(end)
    assert rig.state_at(end, after=mark)["state"] == "below_horizon"
    assert [e["event"] for e in rig.events(mark)] == ["dawn", "noon", "dusk"]


# ---- events at their time ----------------------------------------------------------------------------------


def test_sunrise_is_announced_at_its_time_and_not_before(sun):
    sunrise = astral_at("sunrise", LONDON, EQUINOX)
    rig, _ = sun(LONDON, sunrise - timedelta(minutes=7))
    mark = rig.watch.mark()
    just_before = sunrise - timedelta(seconds=1)
    rig.advance_to(just_before)
    before = rig.state_at(just_before, after=mark)  # the 5-minute refresh, 2 minutes before: nothing came first
    assert rig.events(mark) == []
    assert before["state"] == "below_horizon"
    assert same_second(before["next_sunrise"], sunrise)

    rig.advance_to(sunrise + timedelta(seconds=1))  # no refresh is due: the sunrise timer itself
    after = rig.state_at(rig.now, after=mark)  # updated at the event, after announcing it
    assert after["state"] == "above_horizon"
    assert same_second(after["next_sunrise"], astral_at("sunrise", LONDON, EQUINOX + timedelta(days=1)))
    [event] = rig.events(mark)
    assert event["event"] == "sunrise"
    assert same_second(event["at"], sunrise)


def test_a_day_brings_dawn_sunrise_noon_sunset_dusk_in_order_at_astrals_times(sun):
    start = datetime.combine(EQUINOX, datetime.min.time(), UTC)
    rig, _ = sun(LONDON, start)
    mark = rig.watch.mark()
    for name in EVENTS:
        rig.advance_to(astral_at(name, LONDON, EQUINOX) + timedelta(seconds=5))  # "at" is the event's time
        rig.watch.wait_json(rig.event_topic, lambda e, name=name: e["event"] == name, after=mark)
    end = start + timedelta(days=1)
    rig.advance_to(end)
    rig.state_at(end, after=mark)
    events = rig.events(mark)
    assert [e["event"] for e in events] == list(EVENTS)
    for event in events:
        assert same_second(event["at"], astral_at(event["event"], LONDON, EQUINOX)), event


def test_the_state_is_refreshed_every_five_minutes(sun):
    start = datetime(2024, 3, 20, 9, 0, tzinfo=UTC)
    rig, first = sun(LONDON, start)
    mark = rig.watch.mark()
    rig.clock.advance(REFRESH)
    second = rig.state_at(start + timedelta(seconds=REFRESH), after=mark)
    assert second["elevation"] > first["elevation"]  # a morning sun climbs
    assert second["state"] == first["state"] == "above_horizon"
    assert rig.events(mark) == []


# ---- clock jumps -------------------------------------------------------------------------------------------


def test_a_clock_set_back_over_a_sunrise_does_not_announce_it_twice(sun):
    sunrise = astral_at("sunrise", LONDON, EQUINOX)
    rig, _ = sun(LONDON, sunrise - timedelta(minutes=1))
    mark = rig.watch.mark()
    rig.advance_to(sunrise + timedelta(seconds=1))
    rig.watch.wait_json(rig.event_topic, after=mark)

    rig.clock.set_time(sunrise - timedelta(minutes=2))  # NTP steps the clock back
    rig.clock.advance(JUMP_CHECK)
    noticed = rig.state_at(rig.now, after=mark)  # the schedule was recomputed: sunrise is ahead again
    assert noticed["state"] == "below_horizon"
    assert same_second(noticed["next_sunrise"], sunrise)

    again = rig.watch.mark()
    rig.advance_to(sunrise + timedelta(seconds=3))
    assert rig.state_at(rig.now, after=again)["state"] == "above_horizon"
    assert [e["event"] for e in rig.events(mark)] == ["sunrise"]


def test_a_clock_set_forward_over_a_sunrise_announces_it_once_late(sun):
    sunrise = astral_at("sunrise", LONDON, EQUINOX)
    rig, _ = sun(LONDON, sunrise - timedelta(minutes=5))
    mark = rig.watch.mark()
    rig.clock.set_time(sunrise + timedelta(minutes=3))  # NTP steps the clock forward, past sunrise
    event = rig.watch.wait_json(rig.event_topic, after=mark)
    assert event["event"] == "sunrise"
    assert same_second(event["at"], sunrise)  # the time it happened, not the time it was announced

    rig.state_at(rig.now, after=mark)  # recomputed at the jump
    rig.clock.advance(REFRESH)  # a later recomputation must not announce it again
    rig.state_at(rig.now, after=mark)
    assert [e["event"] for e in rig.events(mark)] == ["sunrise"]


def test_a_clock_set_far_forward_skips_events_more_than_max_late_late(sun):
    dawn, sunrise = astral_at("dawn", LONDON, EQUINOX), astral_at("sunrise", LONDON, EQUINOX)
    assert sunrise - dawn > timedelta(minutes=16)  # the README promises 15 minutes
    rig, _ = sun(LONDON, dawn - timedelta(minutes=1))
    mark = rig.watch.mark()
    rig.clock.set_time(sunrise + timedelta(minutes=1))
    rig.state_at(rig.now, after=mark)
    assert [e["event"] for e in rig.events(mark)] == ["sunrise"]  # dawn was half an hour ago: stale


def test_a_clock_set_forward_over_several_events_announces_each_once_in_order(sun):
    day = date(2024, 11, 25)
    times = {name: astral_at(name, NORTH, day) for name in ("sunrise", "noon", "sunset")}
    rig, _ = sun(NORTH, times["sunrise"] - timedelta(minutes=3))
    mark = rig.watch.mark()
    rig.clock.set_time(times["sunset"] + timedelta(minutes=1))  # sunrise is 14 minutes behind
    rig.state_at(rig.now, after=mark)
    rig.clock.advance(REFRESH)
    rig.state_at(rig.now, after=mark)
    events = rig.events(mark)
    assert [e["event"] for e in events] == ["sunrise", "noon", "sunset"]
    for event in events:
        assert same_second(event["at"], times[event["event"]])


# ---- Home Assistant, the service, config -------------------------------------------------------------------


def test_home_assistant_gets_elevation_next_sunrise_next_sunset_and_above_horizon(sun, housebus_topics):
    rig, _ = sun(LONDON, datetime(2024, 3, 20, 12, 0, tzinfo=UTC))
    config = rig.watch.wait_json(f"{housebus_topics.prefix}/device/+/+/config",
                                 lambda p: p["state_topic"] == rig.state_topic)
    components = config["components"]
    assert set(components) == {"elevation", "next_sunrise", "next_sunset", "above_horizon"}
    assert components["elevation"]["platform"] == "sensor"
    assert components["elevation"]["unit_of_measurement"] == "°"
    assert components["elevation"]["value_template"] == "{{ value_json.elevation }}"
    for key in ("next_sunrise", "next_sunset"):
        assert components[key]["platform"] == "sensor"
        assert components[key]["device_class"] == "timestamp"
        assert components[key]["value_template"] == f"{{{{ value_json.{key} }}}}"
    horizon = components["above_horizon"]
    assert horizon["platform"] == "binary_sensor"
    assert horizon["value_template"] == "{{ 'ON' if value_json.state == 'above_horizon' else 'OFF' }}"
    # Every availability topic says online, or Home Assistant shows the entities unavailable.
    topics = [a["topic"] for a in config["availability"]]
    assert f"{rig.base}/sun/availability" in topics
    rig.watch.wait_for(f"{rig.base}/sun/availability", lambda m: m.text == "online")


class SunReader(Component[ConfigModel]):
    """Calls the ``sun`` service at start and publishes what it returns."""

    section = "sunreader"
    requires = ("sun",)

    def start(self) -> None:
        ctx = self.ctx
        ctx.service("sun")().add_done_callback(lambda done: ctx.publish(ctx.topic("sunreader"), done.result()))


class SunReaderPlugin:
    @hookimpl
    def gateway_register_components(self) -> list[type[Component[Any]]]:
        return [SunReader]


def test_the_sun_service_returns_the_current_state(gateway_factory, mqtt_watch, housebus_topics):
    base = housebus_topics.base
    clock = ManualClock(datetime(2024, 3, 20, 12, 0, tzinfo=UTC))
    gateway_factory({"sunreader": {}, "sun": LONDON}, clock=clock,
                    plugins=[("calendar", gateway_calendar), ("reader", SunReaderPlugin())])
    state = mqtt_watch.wait_json(f"{base}/sun")
    assert mqtt_watch.wait_json(f"{base}/sunreader") == state


@pytest.mark.parametrize(("section", "problem"), [
    ({"latitude": 90.5, "longitude": 0}, "[sun] latitude: Input should be less than or equal to 90"),
    ({"latitude": -91, "longitude": 0}, "[sun] latitude: Input should be greater than or equal to -90"),
    ({"latitude": 0, "longitude": 180.5}, "[sun] longitude: Input should be less than or equal to 180"),
    ({"latitude": 0, "longitude": -181}, "[sun] longitude: Input should be greater than or equal to -180"),
])
def test_a_latitude_or_longitude_off_the_globe_is_a_config_error_naming_the_key(section, problem):
    models = load_plugins([("calendar", gateway_calendar)], entry_points=False).models()
    with pytest.raises(ConfigError) as info:
        validate(Path("h.toml"), {"sun": section}, models)
    assert info.value.problems == [f"h.toml: {problem}"]
    validate(Path("h.toml"), {"sun": {"latitude": 90, "longitude": -180}}, models)  # the edges are on it


def test_a_strip_that_waits_for_the_dark_finds_the_sun_service():
    import gateway_ledstrip
    import gateway_rf12

    models = load_plugins([("rf12", gateway_rf12), ("ledstrip", gateway_ledstrip), ("calendar", gateway_calendar)],
                          entry_points=False).models()
    validate(Path("h.toml"), {"rf12": {"port": "/dev/null"}, "sun": LONDON, "ledstrip": {"hall": {
        "motion_topic": "housebus/rfxtrx/pir", "only_when_dark": True}}}, models)


def test_loading_the_plugin_does_not_import_astral():
    code = ("import sys, gateway_calendar\n"
            "from gateway.plugins import load_plugins\n"
            "plugins = load_plugins([('calendar', gateway_calendar)], entry_points=False)\n"
            "assert 'sun' in plugins.models()\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'astral'))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
