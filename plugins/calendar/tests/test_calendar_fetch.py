"""``gateway_calendar.fetch``: reading iCalendar into occurrences, and telling a server's failures apart.

No gateway here: ``occurrences`` is fed iCalendar text directly, and ``fetch`` talks to the local
HTTP server of the ``feed`` fixture, which can fail in every way a calendar server does.
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from gateway_calendar.config import CalendarConfig
from gateway_calendar.fetch import FetchError, Occurrence, fetch, occurrences

BERLIN = ZoneInfo("Europe/Berlin")
START = datetime(2027, 3, 1, tzinfo=UTC)
END = START + timedelta(days=21)


def calendar(*events: str) -> str:
    """A VCALENDAR of VEVENTs, each written as its lines between BEGIN and END, joined by newlines."""
    body = [f"BEGIN:VEVENT\r\nDTSTAMP:20270101T000000Z\r\n{e.strip().replace(chr(10), chr(13) + chr(10))}\r\n"
            "END:VEVENT" for e in events]
    return "\r\n".join(["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//housebus//tests//EN", *body, "END:VCALENDAR", ""])


def read(*events: str, start: datetime = START, end: datetime = END) -> list[Occurrence]:
    found = occurrences([calendar(*events)], start, end, BERLIN)
    assert found.skipped == {}
    return found.occurrences


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)


# ---- times ---------------------------------------------------------------------------------------------------------


def test_an_all_day_event_without_an_end_lasts_one_local_day() -> None:
    (day,) = read("UID:day\nSUMMARY:Holiday\nDTSTART;VALUE=DATE:20270302")
    assert (day.start, day.end, day.all_day) == (berlin(2027, 3, 2), berlin(2027, 3, 3), True)
    assert day.start == datetime(2027, 3, 1, 23, tzinfo=UTC)


def test_an_all_day_end_is_exclusive() -> None:
    (trip,) = read("UID:trip\nDTSTART;VALUE=DATE:20270302\nDTEND;VALUE=DATE:20270304")
    assert (trip.start, trip.end) == (berlin(2027, 3, 2), berlin(2027, 3, 4))


def test_local_midnight_follows_summer_time() -> None:
    (day,) = read("UID:day\nDTSTART;VALUE=DATE:20270328", end=START + timedelta(days=60))  # the change in Europe
    assert day.start.astimezone(BERLIN).isoformat() == "2027-03-28T00:00:00+01:00"
    assert day.end.astimezone(BERLIN).isoformat() == "2027-03-29T00:00:00+02:00"
    assert day.end - day.start == timedelta(hours=23)


def test_a_date_time_without_an_end_is_an_instant() -> None:
    (ping,) = read("UID:ping\nDTSTART:20270301T090000Z")
    assert ping.start == ping.end == datetime(2027, 3, 1, 9, tzinfo=UTC)
    assert not ping.all_day


def test_a_duration_gives_the_end() -> None:
    (talk,) = read("UID:talk\nDTSTART:20270301T090000Z\nDURATION:PT90M")
    assert talk.end == datetime(2027, 3, 1, 10, 30, tzinfo=UTC)


def test_a_floating_time_is_in_the_gateway_zone() -> None:
    (local,) = read("UID:local\nDTSTART:20270301T090000\nDTEND:20270301T100000")
    assert local.start == datetime(2027, 3, 1, 8, tzinfo=UTC)


def test_a_custom_vtimezone_is_honoured() -> None:
    text = calendar("UID:custom\nDTSTART;TZID=Office:20270301T090000\nDTEND;TZID=Office:20270301T100000")
    zone = ("BEGIN:VTIMEZONE\r\nTZID:Office\r\nBEGIN:STANDARD\r\nDTSTART:19700101T000000\r\nTZOFFSETFROM:+0300\r\n"
            "TZOFFSETTO:+0300\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n")
    found = occurrences([text.replace("BEGIN:VEVENT", zone + "BEGIN:VEVENT", 1)], START, END, BERLIN)
    assert [o.start for o in found.occurrences] == [datetime(2027, 3, 1, 6, tzinfo=UTC)]


def test_title_and_location_are_read() -> None:
    (meeting,) = read("UID:m\nSUMMARY:Budget\\, again\nLOCATION:Room 2\nDTSTART:20270301T090000Z")
    assert (meeting.title, meeting.location, meeting.uid) == ("Budget, again", "Room 2", "m")


# ---- recurrence and the window -------------------------------------------------------------------------------------


def test_a_series_is_expanded_with_its_exceptions_and_moved_occurrences() -> None:
    found = read(
        "UID:weekly\nSUMMARY:Gym\nDTSTART:20270222T090000Z\nDTEND:20270222T100000Z\nRRULE:FREQ=WEEKLY\n"
        "EXDATE:20270315T090000Z",
        # the occurrence of 8 March, moved to the afternoon
        "UID:weekly\nSUMMARY:Gym (late)\nRECURRENCE-ID:20270308T090000Z\nDTSTART:20270308T140000Z\n"
        "DTEND:20270308T150000Z",
    )
    assert [(o.start, o.title) for o in found] == [
        (datetime(2027, 3, 1, 9, tzinfo=UTC), "Gym"),
        (datetime(2027, 3, 8, 14, tzinfo=UTC), "Gym (late)"),
    ]
    # A moved occurrence keeps the key of the instant it replaces.
    assert [o.key for o in found] == [("weekly", "2027-03-01T09:00:00+00:00"), ("weekly", "2027-03-08T09:00:00+00:00")]


def test_the_window_holds_what_overlaps_it() -> None:
    window = (datetime(2027, 3, 1, 9, tzinfo=UTC), datetime(2027, 3, 1, 12, tzinfo=UTC))
    found = read(
        "UID:over\nDTSTART:20270301T070000Z\nDTEND:20270301T090000Z",  # ended as the window starts
        "UID:running\nDTSTART:20270301T080000Z\nDTEND:20270301T093000Z",
        "UID:instant\nDTSTART:20270301T090000Z",
        "UID:inside\nDTSTART:20270301T110000Z\nDTEND:20270301T130000Z",
        "UID:after\nDTSTART:20270301T120000Z\nDTEND:20270301T130000Z",  # starts as the window ends
        start=window[0], end=window[1],
    )
    assert [o.uid for o in found] == ["running", "instant", "inside"]


# ---- malformed data ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("event", "why"), [
    ("DTSTART:20270301T090000Z\nDTEND:20270301T100000Z\nRRULE:FREQ=SOMETIMES", "bad RRULE"),
    ("DTSTART;TZID=Mars/Olympus:20270301T090000\nDTEND;TZID=Mars/Olympus:20270301T100000",
     "unknown time zone 'Mars/Olympus' in DTSTART"),
    ("DTSTART:20270301T090000Z\nRRULE:FREQ=DAILY\nEXDATE;TZID=Mars/Olympus:20270302T090000",
     "unknown time zone 'Mars/Olympus' in EXDATE"),
    ("DTSTART:20270301T100000Z\nDTEND:20270301T090000Z", "it ends before it starts"),
    ("DTSTART:20270301T100000Z\nDURATION:-PT1H", "it ends before it starts"),
    ("DTSTART;VALUE=DATE:20270301\nDTEND:20270301T090000Z", "not both dates or both date-times"),
    ("DTSTART:yesterday", "bad DTSTART"),
    ("SUMMARY:no start", "no DTSTART"),
], ids=["rrule", "tzid", "exdate-tzid", "ends-first", "negative-duration", "mixed-types", "dtstart", "no-dtstart"])
def test_a_malformed_event_is_skipped_and_named_and_the_rest_kept(event: str, why: str) -> None:
    found = occurrences([calendar("UID:broken\n" + event, "UID:fine\nDTSTART:20270301T090000Z")], START, END, BERLIN)
    assert [o.uid for o in found.occurrences] == ["fine"]
    assert list(found.skipped) == ["broken"]
    assert why in found.skipped["broken"]


def test_text_that_is_not_icalendar_is_a_data_error() -> None:
    with pytest.raises(FetchError) as caught:
        occurrences(["<html><body>Please log in</body></html>"], START, END, BERLIN)
    assert caught.value.kind == "data"


# ---- servers -------------------------------------------------------------------------------------------------------


def fetch_feed(feed: Any, **config: Any) -> Any:
    return fetch(CalendarConfig(**{"ics_url": feed.url, **config}), START, END, BERLIN)


def failure(feed: Any, **config: Any) -> FetchError:
    with pytest.raises(FetchError) as caught:
        fetch_feed(feed, **config)
    return caught.value


def test_a_feed_is_fetched(feed: Any) -> None:
    feed.body = calendar("UID:a\nDTSTART:20270301T090000Z")
    assert [o.uid for o in fetch_feed(feed).occurrences] == ["a"]


@pytest.mark.parametrize(("answer", "kind", "words"), [
    (401, "auth", "refused the login (401 Unauthorized): check username and password"),
    (403, "auth", "refused access (403 Forbidden): check that the user may read this calendar"),
    (404, "http", "answered 404 Not Found"),
    (500, "server", "failed with 500 Internal Server Error"),
    (503, "server", "failed with 503 Service Unavailable"),
])
def test_http_errors_are_told_apart(feed: Any, answer: int, kind: str, words: str) -> None:
    feed.answer = answer
    error = failure(feed)
    assert (error.kind, str(error)) == (kind, f"{feed.url} {words}")


@pytest.mark.parametrize("answer", [401, 500])
def test_caldav_errors_are_told_apart_the_same_way(feed: Any, answer: int) -> None:
    feed.answer = answer
    error = failure(feed, ics_url=None, url=feed.url, username="alice", password="pw")
    assert error.kind == {401: "auth", 500: "server"}[answer]
    assert f"{feed.url} " in str(error) and str(answer) in str(error)


def test_a_caldav_answer_that_is_not_caldav_is_a_data_error(feed: Any) -> None:
    feed.body = "<html><body>not a CalDAV server</body></html>"
    error = failure(feed, ics_url=None, url=feed.url)
    assert error.kind == "data"


def test_a_closed_port_is_unreachable(feed: Any) -> None:
    feed.stop()
    error = failure(feed)
    assert (error.kind, str(error)) == ("unreachable", f"cannot reach {feed.url}: Connection refused")


def test_a_server_that_does_not_answer_times_out(feed: Any) -> None:
    feed.answer = "hang"
    began = time.monotonic()
    error = failure(feed, timeout=0.3)
    assert error.kind == "timeout"
    assert str(error).startswith(f"{feed.url} did not answer in time")
    assert time.monotonic() - began < 5


def test_a_page_that_is_not_a_calendar_is_a_data_error(feed: Any) -> None:
    feed.body = "<html><body>Please log in</body></html>"
    error = failure(feed)
    assert error.kind == "data"
    assert str(error).startswith(f"{feed.url} sent no iCalendar data")


def test_no_password_and_no_token_appear_in_an_error(feed: Any) -> None:
    feed.answer = 500
    url = feed.url.replace("http://", "http://alice:Url-Secret@") + "?token=Query-Secret"
    error = failure(feed, ics_url=url)
    assert "Url-Secret" not in str(error) and "Query-Secret" not in str(error)
    assert str(error).startswith(f"{feed.url.replace('http://', 'http://alice@')} failed with 500")
    error = failure(feed, username="alice", password="Config-Secret")
    assert "Config-Secret" not in str(error)


def test_loading_the_plugin_imports_no_calendar_library() -> None:
    """They are imported when a [calendar.<name>] fetches; a gateway without one never loads them."""
    code = ("import sys, gateway_calendar\n"
            "gateway_calendar.gateway_register_components()\n"
            "libraries = ('caldav', 'icalendar', 'recurring_ical_events', 'requests')\n"
            "print(sorted(m for m in libraries if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
