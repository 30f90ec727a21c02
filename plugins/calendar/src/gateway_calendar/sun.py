"""``[sun]``: dawn, sunrise, noon, sunset and dusk as timed events, and the sun's position, on MQTT.

astral is imported only by the functions here that compute, never at module level: the plugin
registers this class whether or not a ``[sun]`` section is configured.

Times are computed with astral's per-event functions, one event and one UTC day at a time: in
polar day or night an event that does not happen that day is simply absent (astral raises
``ValueError``), and the ``next_*`` times are searched for day by day, up to ``SEARCH_DAYS``
ahead. Dawn and dusk are civil (the sun 6° below the horizon).

Clock jumps: every event timer, refresh and jump check runs ``_tick``, which looks at the wall
clock afresh. Events passed since the last tick are published once, in order, late, unless they
are more than ``MAX_LATE`` seconds old (a Pi that booted with a stale clock must not replay
yesterday); events already published are remembered, so that a clock set back over them does
not publish them again.
"""

from __future__ import annotations

import functools
from collections import deque
from datetime import UTC, date, datetime, timedelta
from typing import Any

from gateway import Component, Context, Device, Entity, Timer
from gateway_calendar.config import SunConfig

EVENTS = ("dawn", "sunrise", "noon", "sunset", "dusk")
REFRESH = 300.0  # seconds between state updates, for the elevation and azimuth
JUMP_CHECK = 15.0  # seconds between looks for a jump of the wall clock against the monotonic clock
JUMP_TOLERANCE = 2.0  # seconds the two clocks may drift apart between looks without it counting as a jump
MAX_LATE = 900.0  # seconds: an event missed by more than this (a clock set forward by hours) is skipped
SEARCH_DAYS = 366  # how far ahead a next_* time is searched for before it is given as null
SAME_EVENT = 60.0  # seconds: two computations of one event closer than this are the same event
REMEMBERED = 32  # published events remembered against a clock set back: over six days' worth
HORIZON = -0.37  # degrees: about the elevation (refraction included) astral gives the sun at its sunrise

Place = tuple[float, float, float]  # latitude, longitude, elevation in metres


@functools.lru_cache(maxsize=4096)
def day_events(place: Place, day: date) -> tuple[tuple[str, datetime], ...]:
    """The events astral finds for ``day`` (a UTC date) at ``place``, as UTC times; absent ones left out."""
    from astral import Observer
    from astral import sun as astral_sun

    observer = Observer(*place)
    found: list[tuple[str, datetime]] = []
    for name in EVENTS:
        try:
            at: datetime = getattr(astral_sun, name)(observer, day, tzinfo=UTC)
        except ValueError:  # polar day or night: this event does not happen on this day
            continue
        found.append((name, at))
    return tuple(found)


def events_between(place: Place, after: datetime, until: datetime) -> list[tuple[datetime, str]]:
    """Every event with ``after < time <= until``, in order of time."""
    found: dict[tuple[str, datetime], None] = {}
    day = after.date() - timedelta(days=1)  # astral may place an event of one date on its neighbour
    while day <= until.date() + timedelta(days=1):
        for name, at in day_events(place, day):
            if after < at <= until:
                found[name, at] = None
        day += timedelta(days=1)
    return sorted((at, name) for name, at in found)


def next_event(place: Place, name: str, after: datetime) -> datetime | None:
    """The first ``name`` event after ``after``, within ``SEARCH_DAYS``; None if there is none."""
    start = after.date() - timedelta(days=1)
    for offset in range(SEARCH_DAYS + 2):
        day = start + timedelta(days=offset)
        times = [at for n, at in (*day_events(place, day), *day_events(place, day + timedelta(days=1)))
                 if n == name and at > after]
        if times:
            return min(times)
    return None


def position(place: Place, when: datetime) -> tuple[float, float]:
    """The sun's elevation (with refraction) and azimuth, in degrees, at ``when``."""
    from astral import Observer
    from astral import sun as astral_sun

    observer = Observer(*place)
    return astral_sun.elevation(observer, when), astral_sun.azimuth(observer, when)


def iso(when: datetime) -> str:
    """Local time of the gateway, with the UTC offset in force at that instant (as ``Clock.now``)."""
    return when.astimezone().isoformat(timespec="seconds")


class Sun(Component[SunConfig]):
    """Sun events on ``<base>/sun/event`` and the sun's state, retained, on ``<base>/sun``."""

    section = "sun"
    provides = ("sun",)

    def __init__(self, ctx: Context[SunConfig]) -> None:
        super().__init__(ctx)
        config = ctx.config
        self.place: Place = (config.latitude, config.longitude, float(config.elevation))
        self.state: dict[str, Any] = {}
        self._timer: Timer | None = None
        self._cursor = 0.0  # wall time up to which events have been handled
        self._offset = 0.0  # wall minus monotonic time at the last look, to notice the wall clock being set
        self._published: deque[tuple[str, float]] = deque(maxlen=REMEMBERED)
        ctx.provide("sun", self.current)

    def current(self) -> dict[str, Any]:
        """The ``sun`` service: the state last published on ``<base>/sun``."""
        return dict(self.state)

    def start(self) -> None:
        ctx = self.ctx
        self._cursor = ctx.clock.time()  # events before the start are not announced
        self._offset = self._wall_offset()
        self._discover()
        ctx.set_available(True)
        self._tick()
        ctx.call_every(REFRESH, self._tick)
        ctx.call_every(JUMP_CHECK, self._check_clock)

    # ---- time ------------------------------------------------------------------------

    def _wall_offset(self) -> float:
        return self.ctx.clock.time() - self.ctx.clock.monotonic()

    def _check_clock(self) -> None:
        offset = self._wall_offset()
        if abs(offset - self._offset) > JUMP_TOLERANCE:
            self.ctx.log.info("the wall clock was set by %+.0f s: recomputing the sun's schedule",
                              offset - self._offset)
            self._tick()

    def _tick(self) -> None:
        """Publish the events passed since the last tick, schedule the next one, publish the state."""
        ctx = self.ctx
        self._offset = self._wall_offset()
        now_ts = ctx.clock.time()
        now = datetime.fromtimestamp(now_ts, UTC)
        # A clock set back leaves the cursor in the future; what lies between was published or is still to come.
        since = max(min(self._cursor, now_ts), now_ts - MAX_LATE)
        for at, name in events_between(self.place, datetime.fromtimestamp(since, UTC), now):
            if not self._was_published(name, at.timestamp()):
                self._published.append((name, at.timestamp()))
                ctx.publish(ctx.topic("sun", "event"), {"event": name, "at": iso(at)})
        if since > self._cursor:
            ctx.log.warning("the clock moved on from %s to %s: sun events before %s, more than %.0f s late, "
                            "are not announced", iso(datetime.fromtimestamp(self._cursor, UTC)), iso(now),
                            iso(datetime.fromtimestamp(since, UTC)), MAX_LATE)
        self._cursor = now_ts

        upcoming = {name: next_event(self.place, name, now) for name in EVENTS}
        if self._timer is not None:
            self._timer.cancel()
        times = [at for at in upcoming.values() if at is not None]
        self._timer = ctx.call_at(min(times), self._tick) if times else None
        self.state = self._state(now, upcoming)
        ctx.publish_state("sun", self.state, replace=True, retain=True)

    def _was_published(self, name: str, at: float) -> bool:
        return any(n == name and abs(t - at) < SAME_EVENT for n, t in self._published)

    def _state(self, now: datetime, upcoming: dict[str, datetime | None]) -> dict[str, Any]:
        elevation, azimuth = position(self.place, now)
        sunrise, sunset = upcoming["sunrise"], upcoming["sunset"]
        # Up when the sun sets before it rises next: exactly astral's own sunrise and sunset, also in polar
        # day and night, where no horizon crossing is near. The elevation decides only without either.
        up = sunset < sunrise if sunrise is not None and sunset is not None else elevation > HORIZON
        return {
            "state": "above_horizon" if up else "below_horizon",
            "elevation": round(elevation, 2),
            "azimuth": round(azimuth, 2),
            **{f"next_{name}": None if at is None else iso(at) for name, at in upcoming.items()},
        }

    # ---- Home Assistant --------------------------------------------------------------

    def _discover(self) -> None:
        ctx = self.ctx
        ctx.discover(Device(
            id="sun",
            name="Sun",
            state_topic=ctx.topic("sun"),
            entities=(
                Entity("sensor", "elevation", "Elevation", {"unit_of_measurement": "°",
                                                            "state_class": "measurement"}),
                Entity("sensor", "next_sunrise", "Next sunrise", {"device_class": "timestamp"}),
                Entity("sensor", "next_sunset", "Next sunset", {"device_class": "timestamp"}),
                Entity("binary_sensor", "above_horizon", "Above horizon", {
                    "value_template": "{{ 'ON' if value_json.state == 'above_horizon' else 'OFF' }}"}),
            ),
            model="astral",
        ))
