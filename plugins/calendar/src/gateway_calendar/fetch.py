"""Fetching a calendar's occurrences in a window, from CalDAV or an iCalendar feed; no MQTT here.

``fetch`` blocks (it runs on the gateway's pool through ``ctx.run_blocking``) and bounds its own
time with the configured timeout. It returns every occurrence, recurrences expanded, that overlaps
the window, and the events it had to skip because their data is malformed; a failure of the
server or of the whole answer raises ``FetchError``, whose ``kind`` tells the failures apart.

caldav, icalendar, recurring_ical_events and requests are imported inside the functions: loading
the plugin without a ``[calendar.<name>]`` section imports none of them.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from datetime import time as clock_time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from gateway_calendar.config import CalendarConfig

# Widening of the window asked of the server and of the expansion: a floating or all-day event is
# placed in the gateway's time zone only here, and no zone is more than 14 h from UTC.
MARGIN = timedelta(days=1)
MAX_FEED_BYTES = 20_000_000
# The properties whose damage makes an event's times unknowable; a broken DESCRIPTION does not.
TIME_PROPERTIES = ("DTSTART", "DTEND", "DURATION", "RRULE", "RDATE", "EXDATE", "RECURRENCE-ID")
ZONED_PROPERTIES = ("DTSTART", "DTEND", "RECURRENCE-ID", "RDATE", "EXDATE")

# FetchError kinds
UNREACHABLE = "unreachable"
TIMEOUT = "timeout"
AUTH = "auth"
SERVER = "server"
HTTP = "http"
DATA = "data"


@dataclass(frozen=True)
class Occurrence:
    """One occurrence of an event, its times in UTC.

    Attributes:
        key: ``(uid, recurrence instant)``, the instant in UTC ISO-8601: the same for an
            occurrence in every fetch, also when it is moved (a moved occurrence of a series keeps
            its RECURRENCE-ID). A one-off event's recurrence instant is its start.
        all_day: the event has DATE times; ``start`` and ``end`` are then local midnights of the
            gateway's time zone, ``end`` exclusive as in RFC 5545.
    """

    key: tuple[str, str]
    title: str
    uid: str
    start: datetime
    end: datetime
    location: str | None
    all_day: bool


@dataclass(frozen=True)
class Fetched:
    """What one fetch found: occurrences in order of start, and ``skipped``: uid -> why it was skipped."""

    occurrences: list[Occurrence]
    skipped: dict[str, str] = field(default_factory=dict)


class FetchError(Exception):
    """A fetch that failed as a whole; ``kind`` is one of unreachable, timeout, auth, server, http, data."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class BadEvent(ValueError):
    """One event's data is malformed; the event is skipped."""


# ---- fetching ---------------------------------------------------------------------------------------------------


def fetch(config: CalendarConfig, start: datetime, end: datetime, tz: tzinfo | None) -> Fetched:
    """The occurrences overlapping ``[start, end)`` in the calendar ``config`` names.

    Args:
        tz: the gateway's time zone, for all-day and floating events; None for the system's.

    Raises:
        FetchError: the server could not be reached, refused, failed, or sent no calendar.
    """
    password = config.password.get_secret_value() if config.password is not None else None
    texts: list[str | bytes]
    try:
        if config.url is not None:
            texts = list(_caldav_texts(config, password, start - MARGIN, end + MARGIN))
        else:
            texts = [_feed_text(config, password)]
    except FetchError as exc:
        # A server may echo what it was sent; the password never goes further than this.
        raise FetchError(exc.kind, _scrub(str(exc), password)) from None
    try:
        return occurrences(texts, start, end, tz)
    except FetchError as exc:
        where = redact(config.url or config.ics_url or "")
        raise FetchError(exc.kind, _scrub(f"{where} sent {exc}", password)) from None


def _caldav_texts(config: CalendarConfig, password: str | None, start: datetime, end: datetime) -> list[str]:
    from caldav.collection import Calendar
    from caldav.davclient import DAVClient
    from caldav.lib import error as dav_error

    url = config.url or ""
    where = redact(url)
    try:
        client = DAVClient(url=url, username=config.username, password=password, timeout=math.ceil(config.timeout),
                                  ssl_verify_cert=config.verify_tls)
        with client:
            calendar = Calendar(client=client, url=url)
            # Unexpanded: each event is expanded here, alone, so that one broken event skips only itself.
            found: Any = calendar.search(event=True, start=start, end=end, expand=False)
            if not isinstance(found, list):  # a coroutine comes from caldav's async client only
                raise TypeError(f"caldav's search returned {type(found).__name__}")
            return [str(item.data) for item in found]
    except dav_error.DAVError as exc:
        raise _status_error(getattr(exc, "status", None), None, where) from None
    except OSError as exc:  # the HTTP library's errors (niquests, requests) are OSErrors
        raise _transport_error(exc, where) from None
    except Exception as exc:  # an answer the client could not read (not XML, not a calendar)
        raise FetchError(DATA, f"the CalDAV answer from {where} was not understood: {_reason(exc)}") from None


def _feed_text(config: CalendarConfig, password: str | None) -> bytes:
    import requests

    url = config.ics_url or ""
    where = redact(url)
    auth = (config.username, password or "") if config.username is not None else None
    deadline = time.monotonic() + config.timeout
    try:
        with requests.get(url, auth=auth, timeout=(config.timeout, config.timeout), verify=config.verify_tls,
                          stream=True, headers={"Accept": "text/calendar"}) as response:
            if response.status_code >= 300:
                raise _status_error(response.status_code, response.reason, where)
            body = bytearray()
            # The read timeout bounds each read only; a server trickling bytes is stopped by the deadline.
            for chunk in response.iter_content(65_536):
                body += chunk
                if time.monotonic() > deadline:
                    raise FetchError(TIMEOUT, f"{where} took longer than {config.timeout:g} s to send the feed")
                if len(body) > MAX_FEED_BYTES:
                    raise FetchError(DATA, f"the feed at {where} is larger than {MAX_FEED_BYTES // 1_000_000} MB")
            return bytes(body)
    except requests.RequestException as exc:
        raise _transport_error(exc, where) from None


def _status_error(status: int | None, reason: str | None, where: str) -> FetchError:
    import http

    if reason is None and status is not None:
        try:
            reason = http.HTTPStatus(status).phrase
        except ValueError:
            reason = ""
    answer = f"{status} {reason}".strip() if status is not None else "an error"
    if status == 401:
        return FetchError(AUTH, f"{where} refused the login ({answer}): check username and password")
    if status == 403:
        return FetchError(AUTH, f"{where} refused access ({answer}): check that the user may read this calendar")
    if status is not None and 500 <= status < 600:
        return FetchError(SERVER, f"{where} failed with {answer}")
    return FetchError(HTTP, f"{where} answered {answer}")


def _transport_error(exc: BaseException, where: str) -> FetchError:
    chain = _chain(exc)
    if any(isinstance(e, TimeoutError) or "Timeout" in type(e).__name__ for e in chain):
        return FetchError(TIMEOUT, f"{where} did not answer in time ({_reason(exc)})")
    if any(isinstance(e, ConnectionError) or type(e).__name__ in ("ConnectionError", "NewConnectionError",
                                                                    "NameResolutionError", "SSLError", "gaierror")
           for e in chain):
        return FetchError(UNREACHABLE, f"cannot reach {where}: {_reason(exc)}")
    return FetchError(HTTP, f"the request to {where} failed: {_reason(exc)}")


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and what caused it, outermost first (``__cause__``, ``__context__``, urllib3's ``reason``)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        reason = getattr(current, "reason", None)
        current = current.__cause__ or current.__context__ or (reason if isinstance(reason, BaseException) else None)
    return chain


def _reason(exc: BaseException) -> str:
    """The innermost cause in a few words: ``Connection refused``, rather than three wrapped exceptions."""
    for cause in reversed(_chain(exc)):
        if isinstance(cause, OSError) and cause.strerror:
            return str(cause.strerror)
    innermost = _chain(exc)[-1]
    text = str(innermost).splitlines()[0] if str(innermost) else ""
    # urllib3 names the connection object ("<...HTTPConnection object at 0x...>: Failed to ..."): drop that.
    text = re.sub(r"^<[^>]*>:\s*", "", text)
    return f"{type(innermost).__name__}: {text}"[:200] if text else type(innermost).__name__


def redact(url: str) -> str:
    """``url`` without a password written into it, and without its query (feed URLs carry tokens there)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    if parts.username:
        host = f"{parts.username}@{host}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _scrub(text: str, password: str | None) -> str:
    return text.replace(password, "***") if password else text


# ---- parsing and expanding --------------------------------------------------------------------------------------


def occurrences(texts: Iterable[str | bytes], start: datetime, end: datetime, tz: tzinfo | None) -> Fetched:
    """The occurrences in the iCalendar ``texts`` that overlap ``[start, end)``.

    Each event (all the VEVENTs of one UID: a series and its moved occurrences) is expanded on
    its own, so that a malformed one is skipped, with its uid and the reason in ``skipped``,
    and the others are kept.

    Raises:
        FetchError: a text is not iCalendar at all.
    """
    import icalendar

    by_uid: dict[str, list[Any]] = {}
    skipped: dict[str, str] = {}
    for text in texts:
        try:
            calendars = icalendar.Calendar.from_ical(text, multiple=True)
        except ValueError as exc:
            raise FetchError(DATA, f"no iCalendar data: {_reason(exc)}") from None
        if not calendars:
            raise FetchError(DATA, "no iCalendar data: no VCALENDAR in it")
        for calendar in calendars:
            for event in calendar.walk("VEVENT"):
                uid = str(event.get("UID", "")).strip()
                if not uid:
                    skipped[f"(no UID) {event.get('SUMMARY', '')}"] = "the event has no UID"
                    continue
                by_uid.setdefault(uid, []).append(event)
    found: list[Occurrence] = []
    for uid, events in by_uid.items():
        try:
            found.extend(_expand(uid, events, start, end, tz))
        except Exception as exc:  # whatever a malformed event makes the libraries raise skips that event only
            skipped[uid] = str(exc) if isinstance(exc, BadEvent) else _reason(exc)
    found.sort(key=lambda o: (o.start, o.end, o.uid))
    return Fetched(found, skipped)


def _expand(uid: str, events: list[Any], start: datetime, end: datetime, tz: tzinfo | None) -> list[Occurrence]:
    import icalendar
    import recurring_ical_events

    for event in events:
        _check(event)
    calendar = icalendar.Calendar()
    for event in events:
        calendar.add_component(event)
    found = []
    for component in recurring_ical_events.of(calendar).between(start - MARGIN, end + MARGIN):
        occurrence = _occurrence(uid, component, tz)
        # Overlapping the window; a zero-length occurrence counts at its instant.
        if occurrence.start < end and (occurrence.end > start or occurrence.start >= start):
            found.append(occurrence)
    return found


def _check(event: Any) -> None:
    """Raise ``BadEvent`` for what makes an event's times unknowable."""
    for name, message in getattr(event, "errors", []):
        if name in TIME_PROPERTIES:
            raise BadEvent(f"bad {name}: {message}")
    if "DTSTART" not in event:
        raise BadEvent("no DTSTART")
    for name in ZONED_PROPERTIES:
        values = event.get(name)
        for value in values if isinstance(values, list) else [values]:
            if value is None:
                continue
            zone = value.params.get("TZID")
            times = [v.dt for v in value.dts] if hasattr(value, "dts") else [value.dt]
            # icalendar leaves a time whose TZID it cannot resolve (neither IANA, Windows nor a VTIMEZONE) naive.
            if zone and any(isinstance(t, datetime) and t.tzinfo is None for t in times):
                raise BadEvent(f"unknown time zone {zone!r} in {name}")
    # recurring_ical_events would swap an end before the start; such an event is broken, not reversed.
    begin = event["DTSTART"].dt
    if "DTEND" in event:
        finish = event["DTEND"].dt
        if isinstance(begin, datetime) != isinstance(finish, datetime):
            raise BadEvent("DTSTART and DTEND are not both dates or both date-times")
        if _comparable(finish) < _comparable(begin):
            raise BadEvent("it ends before it starts (DTEND)")
    if "DURATION" in event and event["DURATION"].dt < timedelta(0):
        raise BadEvent("it ends before it starts (DURATION)")


def _comparable(value: date) -> datetime:
    if not isinstance(value, datetime):
        return datetime.combine(value, clock_time(), UTC)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _occurrence(uid: str, component: Any, tz: tzinfo | None) -> Occurrence:
    begin = component["DTSTART"].dt
    all_day = not isinstance(begin, datetime)
    # recurring_ical_events gives every occurrence a DTEND by RFC 5545: from DURATION if there is one, else a
    # date lasts its day and a date-time is an instant.
    finish = component["DTEND"].dt if "DTEND" in component else begin
    # In UTC: Python compares and subtracts two times of one zone by their wall clocks, wrong across a DST change.
    start, end = aware(begin, tz).astimezone(UTC), aware(finish, tz).astimezone(UTC)
    recurrence = component.get("RECURRENCE-ID")
    instant = aware(recurrence.dt, tz) if recurrence is not None else start
    location = component.get("LOCATION")
    return Occurrence(
        key=(uid, instant.astimezone(UTC).isoformat()),
        title=str(component.get("SUMMARY", "")),
        uid=uid,
        start=start,
        end=end,
        location=str(location) if location is not None else None,
        all_day=all_day,
    )


def aware(value: date, tz: tzinfo | None) -> datetime:
    """A DATE as local midnight, a floating DATE-TIME as local time, in ``tz`` (None: the system's zone)."""
    if not isinstance(value, datetime):
        value = datetime.combine(value, clock_time())
    if value.tzinfo is not None:
        return value
    return value.replace(tzinfo=tz) if tz is not None else value.astimezone()
