"""``[calendar.<name>]`` against a real Radicale CalDAV server, the real broker and a manual clock.

The clock starts at ``BASE``, 08:00 UTC on a Monday in the future; the gateway's time zone is
Europe/Berlin (UTC+1 in March), so the times in payloads read an hour later than the UTC times
the tests set. ``rig.to(t)`` moves the clock to ``t`` and returns once every start and end due by
then is on MQTT, so ``rig.events()`` right after it is exact.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from gateway import ManualClock
from gateway.broker import free_port
from gateway.testing import MqttWatch, wait_until

pytestmark = pytest.mark.broker

BASE = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)
ZONE = "Europe/Berlin"
POLL = 60.0
PASSWORD = "Pa55-never-shown"


def at(hours: int, minutes: int = 0, seconds: int = 0, *, days: int = 0) -> datetime:
    """That time (UTC) on the day of ``BASE``, ``days`` later."""
    return BASE.replace(hour=hours, minute=minutes, second=seconds) + timedelta(days=days)


def iso(when: datetime) -> str:
    """How a payload writes ``when``: ISO-8601 in the gateway's zone."""
    return when.astimezone(ZoneInfo(ZONE)).isoformat()


def ical_time(name: str, value: date | datetime | tuple[str, str]) -> str:
    if isinstance(value, tuple):  # (TZID, local time)
        return f"{name};TZID={value[0]}:{value[1]}"
    if isinstance(value, datetime):
        return f"{name}:{value.astimezone(UTC):%Y%m%dT%H%M%SZ}"
    return f"{name};VALUE=DATE:{value:%Y%m%d}"


def vevent(uid: str, start: date | datetime | tuple[str, str], end: date | datetime | tuple[str, str] | None = None,
           *, title: str | None = None, location: str | None = None, extra: tuple[str, ...] = ()) -> str:
    lines = ["BEGIN:VEVENT", f"UID:{uid}", "DTSTAMP:20270101T000000Z", ical_time("DTSTART", start)]
    if end is not None:
        lines.append(ical_time("DTEND", end))
    lines.append(f"SUMMARY:{title or uid.title()}")
    if location is not None:
        lines.append(f"LOCATION:{location}")
    return "\r\n".join([*lines, *extra, "END:VEVENT"])


def described(uid: str, start: datetime, end: datetime, *, title: str | None = None, location: str | None = None,
              all_day: bool = False) -> dict[str, Any]:
    """An occurrence as the summary lists it."""
    return {"title": title or uid.title(), "uid": uid, "start": iso(start), "end": iso(end), "location": location,
            "all_day": all_day}


@pytest.fixture
def start(calendar_rig: Callable[..., Any], radicale: Any) -> Callable[..., Any]:
    """``start(**table)``: the gateway on the test's Radicale calendar, once the first poll is on MQTT."""

    def run(**table: Any) -> Any:
        return calendar_rig(ManualClock(BASE), url=radicale.url, username="alice", password=PASSWORD,
                            poll_interval=POLL, timezone=ZONE, **table)

    return run


def test_a_one_off_event_starts_and_ends_at_its_times(radicale: Any, start: Callable[..., Any]) -> None:
    radicale.put(vevent("standup", at(9), at(9, 15), title="Stand-up", location="Kitchen"))
    rig = start()
    rig.to(at(8, 59, 59))
    assert rig.events() == []
    rig.to(at(9))
    assert rig.watch.received(rig.event_topic)[-1].json() == {
        "event": "start", "title": "Stand-up", "uid": "standup", "start": "2027-03-01T10:00:00+01:00",
        "end": "2027-03-01T10:15:00+01:00", "location": "Kitchen", "all_day": False}
    assert not rig.watch.received(rig.event_topic)[-1].retain
    rig.to(at(9, 14, 59))
    assert rig.events() == [("start", "standup")]
    rig.to(at(9, 15))
    assert rig.events() == [("start", "standup"), ("end", "standup")]
    assert rig.watch.received(rig.event_topic)[-1].json()["event"] == "end"


def test_a_weekly_event_starts_and_ends_every_week(radicale: Any, start: Callable[..., Any]) -> None:
    radicale.put(vevent("gym", at(17, days=-7), at(18, days=-7), extra=("RRULE:FREQ=WEEKLY",)))
    rig = start(lookahead=8 * 86_400)
    rig.walk(at(16, 59, 59), at(17))
    assert rig.watch.received(rig.event_topic)[-1].json()["start"] == "2027-03-01T18:00:00+01:00"
    rig.walk(at(17, 59, 59), at(18), at(16, 59, 59, days=7))
    assert rig.events() == [("start", "gym"), ("end", "gym")]
    rig.to(at(17, days=7))
    assert rig.watch.received(rig.event_topic)[-1].json() == {
        "event": "start", "title": "Gym", "uid": "gym", "start": "2027-03-08T18:00:00+01:00",
        "end": "2027-03-08T19:00:00+01:00", "location": None, "all_day": False}
    rig.walk(at(17, 59, 59, days=7), at(18, days=7))
    assert rig.events() == [("start", "gym"), ("end", "gym")] * 2


def test_an_all_day_event_runs_from_local_midnight_to_local_midnight(radicale: Any,
                                                                     start: Callable[..., Any]) -> None:
    radicale.put(vevent("holiday", date(2027, 3, 2)))  # no DTEND: one day (RFC 5545)
    rig = start()
    # Midnight in Berlin is 23:00 UTC the day before.
    rig.walk(at(22, 59, 59))
    assert rig.events() == []
    rig.to(at(23))
    assert rig.watch.received(rig.event_topic)[-1].json() == {
        "event": "start", "title": "Holiday", "uid": "holiday", "start": "2027-03-02T00:00:00+01:00",
        "end": "2027-03-03T00:00:00+01:00", "location": None, "all_day": True}
    rig.walk(at(22, 59, 59, days=1))
    assert rig.events() == [("start", "holiday")]
    rig.to(at(23, days=1))
    assert rig.events() == [("start", "holiday"), ("end", "holiday")]


def test_an_event_in_another_time_zone_keeps_to_its_zone(radicale: Any, start: Callable[..., Any]) -> None:
    # 09:00 in New York in March (EST, UTC-5) is 14:00 UTC, 15:00 in Berlin.
    radicale.put(vevent("call", ("America/New_York", "20270301T090000"), ("America/New_York", "20270301T093000")))
    rig = start()
    rig.to(at(13, 59, 59))
    assert rig.events() == []
    rig.to(at(14))
    payload = rig.watch.received(rig.event_topic)[-1].json()
    assert (payload["event"], payload["start"], payload["end"]) == (
        "start", "2027-03-01T15:00:00+01:00", "2027-03-01T15:30:00+01:00")
    rig.walk(at(14, 29, 59))
    assert rig.events() == [("start", "call")]
    rig.to(at(14, 30))
    assert rig.events() == [("start", "call"), ("end", "call")]


def test_moved_deleted_and_added_events_are_followed_at_the_next_poll(radicale: Any,
                                                                      start: Callable[..., Any]) -> None:
    radicale.put(vevent("moved", at(10), at(10, 30)))
    radicale.put(vevent("deleted", at(11), at(11, 30)))
    radicale.put(vevent("kept", at(12), at(12, 30)))
    rig = start()
    mark = rig.watch.mark()
    radicale.put(vevent("moved", at(12, 30), at(13)))
    radicale.remove("deleted")
    radicale.put(vevent("added", at(9, 30), at(9, 45)))
    rig.to(BASE + timedelta(seconds=POLL))
    rig.summary(lambda s: s["next"]["uid"] == "added", after=mark)
    rig.walk(at(9, 30), at(9, 45), at(10), at(10, 30), at(11), at(11, 30), at(12), at(12, 30), at(13))
    assert rig.events() == [("start", "added"), ("end", "added"), ("start", "kept"), ("end", "kept"),
                            ("start", "moved"), ("end", "moved")]
    moved = [m.json() for m in rig.watch.received(rig.event_topic) if m.json()["uid"] == "moved"]
    assert {m["start"] for m in moved} == {iso(at(12, 30))}


def test_an_event_deleted_after_it_started_still_ends(radicale: Any, start: Callable[..., Any]) -> None:
    radicale.put(vevent("meeting", at(9), at(10)))
    rig = start()
    rig.to(at(9))
    radicale.remove("meeting")
    radicale.put(vevent("later", at(11), at(11, 30)))  # shows when the poll has been handled
    mark = rig.watch.mark()
    rig.to(at(9) + timedelta(seconds=POLL))
    summary = rig.summary(lambda s: s["next"] is not None and s["next"]["uid"] == "later", after=mark)
    assert [a["uid"] for a in summary["active"]] == ["meeting"]
    rig.walk(at(9, 59, 59))
    assert rig.events() == [("start", "meeting")]
    rig.to(at(10))
    assert rig.events() == [("start", "meeting"), ("end", "meeting")]


def test_a_started_event_whose_end_moves_ends_at_the_new_end(radicale: Any, start: Callable[..., Any]) -> None:
    radicale.put(vevent("workshop", at(9), at(10)))
    rig = start()
    rig.to(at(9))
    mark = rig.watch.mark()
    radicale.put(vevent("workshop", at(9), at(10, 30)))
    rig.to(at(9) + timedelta(seconds=POLL))
    rig.summary(lambda s: s["active"] and s["active"][0]["end"] == iso(at(10, 30)), after=mark)
    rig.walk(at(10), at(10, 29, 59))
    assert rig.events() == [("start", "workshop")]
    rig.to(at(10, 30))
    assert rig.events() == [("start", "workshop"), ("end", "workshop")]
    assert rig.watch.received(rig.event_topic)[-1].json()["end"] == iso(at(10, 30))


def test_events_in_progress_at_startup_are_active_without_a_start(radicale: Any, start: Callable[..., Any]) -> None:
    radicale.put(vevent("breakfast", at(7, 30), at(9)))
    radicale.put(vevent("meeting", at(10), at(11)))
    rig = start()
    assert rig.watch.received(rig.summary_topic)[-1].json() == {
        "active": [described("breakfast", at(7, 30), at(9))],
        "next": described("meeting", at(10), at(11)),
    }
    rig.walk(at(8, 59, 59))
    assert rig.events() == []
    rig.to(at(9))
    assert rig.events() == [("end", "breakfast")]


def test_the_summary_is_retained_and_follows_every_change(radicale: Any, start: Callable[..., Any],
                                                          mqtt_broker: Any) -> None:
    radicale.put(vevent("a", at(9), at(10)))
    radicale.put(vevent("b", at(9, 30), at(11), location="Hall"))
    rig = start()
    a, b = described("a", at(9), at(10)), described("b", at(9, 30), at(11), location="Hall")
    mark = rig.watch.mark()
    rig.walk(at(9), at(9, 30), at(10), at(11))
    assert [m.json() for m in rig.watch.received(rig.summary_topic, mark)] == [
        {"active": [a], "next": b},
        {"active": [a, b], "next": None},
        {"active": [b], "next": None},
        {"active": [], "next": None},
    ]
    late = MqttWatch(mqtt_broker)
    late.connect()
    try:
        late.subscribe(rig.summary_topic)
        retained = late.wait_for(rig.summary_topic)
    finally:
        late.close()
    assert retained.retain
    assert retained.json() == {"active": [], "next": None}


def test_home_assistant_gets_a_busy_sensor_and_a_next_event_sensor(start: Callable[..., Any],
                                                                   housebus_topics: Any) -> None:
    rig = start()
    config = rig.watch.wait_json(f"{housebus_topics.prefix}/device/+/+/config",
                                 lambda p: p["device"]["name"] == "Calendar home")
    summary_topic = rig.summary_topic
    assert config["state_topic"] == summary_topic
    busy, upcoming = config["components"]["busy"], config["components"]["next"]
    assert busy["platform"] == "binary_sensor"
    assert busy["value_template"] == "{{ 'ON' if value_json.active else 'OFF' }}"
    assert upcoming["platform"] == "sensor"
    assert upcoming["name"] == "Next event"
    assert upcoming["value_template"] == "{{ value_json.next.title[:255] if value_json.next else 'None' }}"
    # The title and the start (with the rest of the next occurrence) are the sensor's attributes.
    assert upcoming["json_attributes_topic"] == summary_topic
    assert upcoming["json_attributes_template"] == "{{ (value_json.next or {}) | tojson }}"
    availability = [a["topic"] for a in config["availability"]]
    assert f"{housebus_topics.base}/calendar/home/availability" in availability
    rig.watch.wait_for(f"{housebus_topics.base}/calendar/home/availability", lambda m: m.text == "online")


def test_a_malformed_event_is_skipped_with_one_log_line(radicale: Any, start: Callable[..., Any],
                                                        caplog: pytest.LogCaptureFixture) -> None:
    # Radicale stores a TZID it does not know; it refuses a bad RRULE (the feed tests have that one).
    radicale.put(vevent("martian", ("Mars/Olympus", "20270301T090000"), ("Mars/Olympus", "20270301T100000")))
    radicale.put(vevent("earthly", at(9), at(10)))
    caplog.set_level(logging.WARNING, logger="housebus.calendar.home")
    rig = start()
    mark = rig.watch.mark()
    radicale.put(vevent("marker", at(8, 30), at(8, 45)))  # shows when the second poll has been handled
    rig.to(BASE + timedelta(seconds=POLL))
    rig.summary(lambda s: s["next"]["uid"] == "marker", after=mark)
    rig.walk(at(8, 30), at(8, 45), at(9))
    assert rig.events() == [("start", "marker"), ("end", "marker"), ("start", "earthly")]
    lines = [r.getMessage() for r in caplog.records if "martian" in r.getMessage()]
    assert len(lines) == 1
    assert "Mars/Olympus" in lines[0]


def test_a_refused_login_is_reported_without_the_password(calendar_rig: Callable[..., Any], tmp_path: Path,
                                                          radicale_with: Callable[..., Any],
                                                          caplog: pytest.LogCaptureFixture) -> None:
    users = tmp_path / "users"
    users.write_text("alice:the-right-one\n")
    server = radicale_with("--auth-type", "htpasswd", "--auth-htpasswd-filename", str(users),
                           "--auth-htpasswd-encryption", "plain")
    rig = calendar_rig(ManualClock(BASE), wait=False, url=f"{server.url}/alice/calendar/", username="alice",
                       password=PASSWORD, poll_interval=POLL, timezone=ZONE)
    report = rig.watch.wait_json(rig.error_topic)
    assert report["topic"] == rig.summary_topic
    assert "refused the login (401 Unauthorized)" in report["error"]
    assert PASSWORD not in report["error"]
    assert not any(PASSWORD in r.getMessage() for r in caplog.records)


def test_an_unreachable_server_at_startup_is_reported(calendar_rig: Callable[..., Any]) -> None:
    rig = calendar_rig(ManualClock(BASE), wait=False, url=f"http://127.0.0.1:{free_port()}/alice/calendar/",
                       poll_interval=POLL, timezone=ZONE)
    report = rig.watch.wait_json(rig.error_topic)
    assert report["error"].startswith("cannot reach http://127.0.0.1:")
    assert "Connection refused" in report["error"]
    assert rig.watch.received(rig.summary_topic) == []  # nothing known: no summary is made up


# ---- an iCalendar feed -------------------------------------------------------------------------------------------


@pytest.fixture
def start_feed(calendar_rig: Callable[..., Any], feed: Any) -> Callable[..., Any]:
    """``start_feed(**table)``: the gateway on the test's feed, once the first poll is on MQTT."""

    def run(*, wait: bool = True, **table: Any) -> Any:
        return calendar_rig(ManualClock(BASE), wait=wait, ics_url=feed.url, poll_interval=POLL, timezone=ZONE,
                            **table)

    return run


def errors(rig: Any) -> list[str]:
    return [m.json()["error"] for m in rig.watch.received(rig.error_topic)]


def test_an_icalendar_feed_is_followed_like_a_caldav_calendar(feed: Any, start_feed: Callable[..., Any]) -> None:
    feed.set(vevent("standup", at(9), at(9, 15), title="Stand-up"))
    rig = start_feed(username="alice", password=PASSWORD)
    assert rig.watch.received(rig.summary_topic)[-1].json()["next"]["uid"] == "standup"
    assert feed.auth_seen[-1] == "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    feed.set(vevent("standup", at(9, 30), at(9, 45), title="Stand-up"), vevent("coffee", at(8, 30), at(8, 40)))
    rig.poll(feed, POLL)
    assert rig.watch.received(rig.summary_topic)[-1].json()["next"]["uid"] == "coffee"
    rig.walk(at(8, 30), at(8, 40), at(9), at(9, 30), at(9, 45))
    assert rig.events() == [("start", "coffee"), ("end", "coffee"), ("start", "standup"), ("end", "standup")]
    assert rig.watch.received(rig.event_topic)[-1].json()["start"] == iso(at(9, 30))


def test_server_errors_are_reported_once_per_kind_while_the_schedule_runs_on(
        feed: Any, start_feed: Callable[..., Any], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="housebus.calendar.home")
    feed.set(vevent("meeting", at(8, 30), at(8, 45)))
    rig = start_feed()
    feed.answer = 500
    rig.poll(feed, POLL)
    rig.poll(feed, POLL)
    feed.answer = 503
    rig.poll(feed, POLL)
    assert len(errors(rig)) == 1
    assert "failed with 500 Internal Server Error; keeping the known schedule, retrying every 60 s" in errors(rig)[0]
    feed.answer = 401
    rig.poll(feed, POLL)
    rig.poll(feed, POLL)
    assert len(errors(rig)) == 2
    assert "refused the login (401 Unauthorized)" in errors(rig)[1]
    feed.stop()
    rig.clock.advance(POLL)
    rig.watch.wait_json(rig.error_topic, lambda e: e["error"].startswith("cannot reach"))
    rig.walk(at(8, 30), at(8, 45))  # the server is away: what was known still runs
    assert rig.events() == [("start", "meeting"), ("end", "meeting")]
    feed.start()
    feed.answer = "ok"
    feed.set(vevent("next", at(10), at(11)))
    rig.poll(feed, POLL)
    assert rig.watch.received(rig.summary_topic)[-1].json()["next"]["uid"] == "next"
    assert len(errors(rig)) == 3  # the polls while it was away said nothing more
    assert any("answers again" in r.getMessage() for r in caplog.records)


def test_a_hanging_server_delays_no_event(feed: Any, start_feed: Callable[..., Any]) -> None:
    feed.set(vevent("meeting", at(8, 5), at(8, 10)))
    rig = start_feed(timeout=30)
    feed.answer = "hang"
    hits = feed.hits
    rig.clock.advance(POLL)
    wait_until(lambda: feed.hits > hits, what="the poll's request")
    rig.clock.set_time(at(8, 5))
    rig.flush()
    assert rig.events() == [("start", "meeting")]
    assert rig.component.polling  # the fetch is still waiting for the server
    feed.release.set()
    rig.watch.wait_for(rig.error_topic)


def test_malformed_events_in_a_feed_are_skipped_with_one_log_line_each(
        feed: Any, start_feed: Callable[..., Any], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="housebus.calendar.home")
    feed.set(vevent("good", at(9), at(10)),
             vevent("bad-rule", at(9), at(10), extra=("RRULE:FREQ=SOMETIMES",)),
             vevent("bad-zone", ("Mars/Olympus", "20270301T090000"), ("Mars/Olympus", "20270301T100000")),
             vevent("bad-end", at(10), at(9)))
    rig = start_feed()
    rig.poll(feed, POLL)
    skipped = [r.getMessage() for r in caplog.records if "skipping event" in r.getMessage()]
    for uid in ("bad-rule", "bad-zone", "bad-end"):
        assert len([line for line in skipped if f"skipping event {uid}:" in line]) == 1, skipped
    assert len(skipped) == 3
    rig.to(at(9))
    assert rig.events() == [("start", "good")]


# ---- the clock stepping ------------------------------------------------------------------------------------------


def test_a_clock_set_back_repeats_no_event(feed: Any, start_feed: Callable[..., Any]) -> None:
    feed.set(vevent("a", at(9), at(9, 30)))
    rig = start_feed()
    rig.walk(at(9), at(9, 30))
    feed.set(vevent("a", at(9), at(9, 30)), vevent("b", at(10), at(10, 30)))
    mark = rig.watch.mark()
    rig.clock.set_time(at(8, 50))  # NTP steps the wall clock back 40 minutes
    rig.poll(feed, POLL)
    assert rig.watch.received(rig.summary_topic)[-1].json()["next"]["uid"] == "b"
    rig.walk(at(9), at(9, 30), at(10), at(10, 30))
    assert rig.events(mark) == [("start", "b"), ("end", "b")]


def test_a_clock_set_forward_past_a_start_publishes_it_once(feed: Any, start_feed: Callable[..., Any]) -> None:
    feed.set(vevent("long", at(9), at(11)), vevent("short", at(10, 30), at(10, 45)))
    rig = start_feed()
    rig.clock.set_time(at(10))  # NTP steps the wall clock forward past the start of "long"
    rig.flush()
    assert rig.events() == [("start", "long")]
    assert rig.watch.received(rig.event_topic)[-1].json()["start"] == iso(at(9))
    rig.poll(feed, POLL)  # a poll sees "long" again
    rig.walk(at(10, 30), at(10, 45), at(11))
    assert rig.events() == [("start", "long"), ("start", "short"), ("end", "short"), ("end", "long")]


def test_an_event_the_clock_jumped_far_past_is_not_replayed(feed: Any, start_feed: Callable[..., Any]) -> None:
    feed.set(vevent("early", at(9), at(9, 30)), vevent("recent", at(9, 40), at(9, 50)),
             vevent("later", at(11), at(12)))
    rig = start_feed()
    mark = rig.watch.mark()
    rig.clock.set_time(at(10))  # "early" was over 30 minutes before; "recent" 10 minutes before
    rig.flush()
    assert rig.events() == [("start", "recent"), ("end", "recent")]
    assert rig.watch.received(rig.summary_topic, mark)[-1].json()["next"]["uid"] == "later"
    rig.to(at(11))
    assert rig.events() == [("start", "recent"), ("end", "recent"), ("start", "later")]


def test_a_clock_jump_fetches_the_new_window_at_once(feed: Any, start_feed: Callable[..., Any]) -> None:
    feed.set(vevent("evening", at(20), at(20, 30)))
    rig = start_feed(lookahead=3600)
    assert rig.watch.received(rig.summary_topic)[-1].json() == {"active": [], "next": None}
    mark = rig.watch.mark()
    rig.clock.set_time(at(19, 45))
    rig.clock.advance(15)  # the next look at the clocks, long before the next poll is due
    rig.summary(lambda s: s["next"] is not None and s["next"]["uid"] == "evening", after=mark)
