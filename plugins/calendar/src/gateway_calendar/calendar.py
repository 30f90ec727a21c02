"""``[calendar.<name>]``: a CalDAV calendar or an iCalendar feed, its events' starts and ends on MQTT.

Every ``poll_interval`` the lookahead window is fetched on the gateway's pool of blocking
workers; the starts and ends are wall-clock timers on the component's own thread, so a slow or
dead server never delays them. Between polls the timers follow the calendar: an occurrence that
is gone is never announced, a moved one is a new occurrence (its old timers are cancelled), and
one that has started keeps its end timer whatever the server says.

An occurrence is told apart by its key (uid, recurrence instant) and its start. What has been
published is remembered per occurrence, so that a clock set back, or a poll that sees an
occurrence again, never announces it twice; a clock set forward past a start announces it once,
late. An occurrence the clock jumped over entirely, by more than ``MAX_LATE``, is not announced
at all: a Pi that booted with a stale date must not replay the meetings of that date.
"""

from __future__ import annotations

import functools
from concurrent.futures import Future
from datetime import datetime, timedelta, tzinfo
from typing import Any

from gateway import Component, Context, Device, Entity, Timer
from gateway_calendar.config import CalendarConfig
from gateway_calendar.fetch import Fetched, FetchError, Occurrence, fetch, redact

MAX_LATE = 900.0  # seconds: an occurrence over for longer than this when its timer runs was jumped over
JUMP_CHECK = 15.0  # seconds between looks for the wall clock stepping against the monotonic clock
JUMP_TOLERANCE = 2.0  # seconds the two clocks may drift apart between looks without it counting as a jump
FORGET_AFTER = timedelta(days=2)  # how long what was published is remembered after the occurrence's end

Ident = tuple[tuple[str, str], datetime]  # (Occurrence.key, start): a moved occurrence is a new one


class Calendar(Component[CalendarConfig]):
    """One calendar: its events on ``<base>/calendar/<name>/event``, its summary on ``<base>/calendar/<name>``."""

    section = "calendar"
    instances = True

    def __init__(self, ctx: Context[CalendarConfig]) -> None:
        super().__init__(ctx)
        self.config = ctx.config
        self.name = ctx.instance or ""
        self.device = f"calendar/{self.name}"
        self.event_topic = ctx.topic("calendar", self.name, "event")
        self.tz: tzinfo | None = None
        if self.config.timezone is not None:
            from zoneinfo import ZoneInfo

            self.tz = ZoneInfo(self.config.timezone)
        self.known: dict[Ident, Occurrence] = {}  # the last poll's occurrences, and started ones it no longer has
        self.active: dict[Ident, Occurrence] = {}  # started (or in progress at startup) and not ended
        self.announced: set[Ident] = set()  # active ones whose start was published
        self.timers: dict[tuple[Ident, str], Timer] = {}
        self.done: dict[tuple[Ident, str], datetime] = {}  # (occurrence, "start"/"end") handled -> its end
        self.polled = False  # a fetch has succeeded
        self.polling = False
        self.repoll = False  # poll again as soon as the fetch in progress ends (its window is stale)
        self.stopped = False
        self.error_kind: str | None = None
        self.skipped: dict[str, str] = {}  # uid -> why, as last logged
        self.summary: dict[str, Any] | None = None
        self.offset: float | None = None  # wall minus monotonic clock at the last jump check

    # ---- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        ctx = self.ctx
        self._discover()
        ctx.set_available(True)
        self.offset = ctx.clock.time() - ctx.clock.monotonic()
        self._poll()
        ctx.call_every(self.config.poll_interval, self._poll)
        ctx.call_every(JUMP_CHECK, self._check_jump)

    def stop(self) -> None:
        self.stopped = True  # a fetch still running hands its result to nobody

    # ---- polling ---------------------------------------------------------------------

    def _poll(self) -> None:
        if self.polling or self.stopped:
            return  # the previous fetch is still running: it bounds its own time
        self.polling, self.repoll = True, False
        start = self.ctx.clock.now()
        end = start + timedelta(seconds=self.config.lookahead)
        future = self.ctx.run_blocking(fetch, self.config, start, end, self.tz)
        future.add_done_callback(functools.partial(self._fetched, start))

    def _fetched(self, window_start: datetime, future: Future[Fetched]) -> None:
        try:
            self._handle(window_start, future)
        finally:
            self.polling = False
        if self.repoll:
            self._poll()

    def _handle(self, window_start: datetime, future: Future[Fetched]) -> None:
        if self.stopped or future.cancelled():
            return
        error = future.exception()
        if error is not None:
            self._failed(error)
            return
        if self.error_kind is not None:
            self.ctx.log.info("%s: %s answers again", self.ctx.name, self._where())
            self.error_kind = None
        result = future.result()
        self._log_skipped(result.skipped)
        self._apply(result.occurrences, window_start)

    def _failed(self, error: BaseException) -> None:
        """Report a failed fetch once per kind of failure; the known schedule runs on meanwhile."""
        if isinstance(error, FetchError):
            kind, message = error.kind, str(error)
        else:
            kind, message = "internal", f"internal error fetching {self._where()}: {type(error).__name__}: {error}"
            if self.error_kind != kind:
                self.ctx.log.error("%s: %s", self.ctx.name, message, exc_info=error)
        if kind == self.error_kind:
            return
        self.error_kind = kind
        self.ctx.report_error(self.ctx.topic(self.device), f"{message}; keeping the known schedule, "
                                                           f"retrying every {self.config.poll_interval:g} s")

    def _log_skipped(self, skipped: dict[str, str]) -> None:
        for uid, why in skipped.items():
            if self.skipped.get(uid) != why:
                self.ctx.log.warning("%s: skipping event %s: %s", self.ctx.name, uid, why)
        self.skipped = dict(skipped)

    def _check_jump(self) -> None:
        clock = self.ctx.clock
        offset = clock.time() - clock.monotonic()
        if self.offset is not None and abs(offset - self.offset) > JUMP_TOLERANCE:
            # The window fetched before the jump is the wrong one; the timers have fired already.
            self.ctx.log.info("%s: the wall clock moved by %+.0f s: fetching the calendar again",
                              self.ctx.name, offset - self.offset)
            self.repoll = True
            self._poll()
        self.offset = offset

    # ---- the schedule ----------------------------------------------------------------

    def _apply(self, occurrences: list[Occurrence], window_start: datetime) -> None:
        first = not self.polled
        self.polled = True
        fresh = {(o.key, o.start): o for o in occurrences}
        for ident in list(self.known):
            if ident not in fresh and ident not in self.active:  # deleted or moved before it started
                self._cancel(ident, "start")
                self._cancel(ident, "end")
                del self.known[ident]
        for ident, occurrence in fresh.items():
            old = self.known.get(ident)
            self.known[ident] = occurrence
            if ident in self.active:
                self.active[ident] = occurrence  # its end event carries the new title and end
            if old is None and (ident, "start") not in self.done and ident not in self.active:
                if first and occurrence.start < window_start:
                    # In progress when the gateway started: a run before this one may have announced it.
                    self.done[(ident, "start")] = occurrence.end
                    self.active[ident] = occurrence
                else:
                    self._at(ident, "start", occurrence.start)
            if (old is None or old.end != occurrence.end) and (ident, "end") not in self.done:
                self._at(ident, "end", occurrence.end)
        self._forget()
        self._publish_summary()

    def _at(self, ident: Ident, kind: str, when: datetime) -> None:
        self._cancel(ident, kind)
        self.timers[(ident, kind)] = self.ctx.call_at(when, self._started if kind == "start" else self._ended, ident)

    def _cancel(self, ident: Ident, kind: str) -> None:
        timer = self.timers.pop((ident, kind), None)
        if timer is not None:
            timer.cancel()

    def _started(self, ident: Ident) -> None:
        self.timers.pop((ident, "start"), None)
        occurrence = self.known.get(ident)
        if occurrence is None or (ident, "start") in self.done:
            return
        self.done[(ident, "start")] = occurrence.end
        now = self.ctx.clock.now()
        if now >= occurrence.end and (now - occurrence.end).total_seconds() > MAX_LATE:
            self.ctx.log.info("%s: not announcing %r of %s: the clock jumped past it", self.ctx.name,
                              occurrence.title, self._iso(occurrence.start))
            self.done[(ident, "end")] = occurrence.end
            self._cancel(ident, "end")
            del self.known[ident]
        else:
            self.active[ident] = occurrence
            self.announced.add(ident)
            self._announce("start", occurrence)
        self._publish_summary()

    def _ended(self, ident: Ident) -> None:
        self.timers.pop((ident, "end"), None)
        occurrence = self.active.pop(ident, None)
        if occurrence is None or (ident, "end") in self.done:
            return
        self.done[(ident, "end")] = occurrence.end
        self.known.pop(ident, None)
        late = (self.ctx.clock.now() - occurrence.end).total_seconds()
        # An end whose start we announced always follows it; one of an occurrence we only found in progress
        # (at startup) is left out when a clock jump made it stale.
        if ident in self.announced or late <= MAX_LATE:
            self._announce("end", occurrence)
        else:
            self.ctx.log.info("%s: not announcing the end of %r at %s: the clock jumped past it", self.ctx.name,
                              occurrence.title, self._iso(occurrence.end))
        self.announced.discard(ident)
        self._publish_summary()

    def _forget(self) -> None:
        horizon = self.ctx.clock.now() - FORGET_AFTER
        for handled in [h for h, end in self.done.items() if end < horizon]:
            del self.done[handled]

    # ---- publishing ------------------------------------------------------------------

    def _announce(self, kind: str, occurrence: Occurrence) -> None:
        self.ctx.publish(self.event_topic, {"event": kind, **self._describe(occurrence)})

    def _publish_summary(self) -> None:
        if not self.polled:
            return  # nothing known yet: the retained summary of the last run stands
        pending = [o for ident, o in self.known.items()
                   if ident not in self.active and (ident, "start") not in self.done]
        upcoming = min(pending, key=lambda o: (o.start, o.end, o.uid), default=None)
        summary = {
            "active": [self._describe(o) for o in sorted(self.active.values(), key=lambda o: (o.start, o.end, o.uid))],
            "next": self._describe(upcoming) if upcoming is not None else None,
        }
        if summary != self.summary:
            self.summary = summary
            self.ctx.publish_state(self.device, summary, replace=True, retain=True)

    def _describe(self, occurrence: Occurrence) -> dict[str, Any]:
        return {
            "title": occurrence.title,
            "uid": occurrence.uid,
            "start": self._iso(occurrence.start),
            "end": self._iso(occurrence.end),
            "location": occurrence.location,
            "all_day": occurrence.all_day,
        }

    def _iso(self, when: datetime) -> str:
        return when.astimezone(self.tz).isoformat()

    def _where(self) -> str:
        return redact(self.config.url or self.config.ics_url or "")

    def _discover(self) -> None:
        ctx = self.ctx
        state_topic = ctx.topic(self.device)
        self.ctx.discover(Device(
            id=f"calendar_{self.name}",
            name=f"Calendar {self.name}",
            state_topic=state_topic,
            entities=(
                Entity("binary_sensor", "busy", "Busy", {
                    "value_template": "{{ 'ON' if value_json.active else 'OFF' }}",
                    "json_attributes_topic": state_topic,
                    "json_attributes_template": "{{ {'active': value_json.active} | tojson }}",
                    "icon": "mdi:calendar-check",
                }),
                Entity("sensor", "next", "Next event", {
                    # "None" is Home Assistant's word for no value; a state is at most 255 characters.
                    "value_template": "{{ value_json.next.title[:255] if value_json.next else 'None' }}",
                    "json_attributes_topic": state_topic,
                    "json_attributes_template": "{{ (value_json.next or {}) | tojson }}",
                    "icon": "mdi:calendar-clock",
                }),
            ),
            model="CalDAV calendar" if self.config.url is not None else "iCalendar feed",
        ))
