"""housebus calendar and sun: CalDAV/iCalendar start and end events, and sun events, on MQTT.

caldav, icalendar, recurring-ical-events, requests and astral are imported only by the
components, when a ``[calendar.<name>]`` or ``[sun]`` section is configured.
"""

from __future__ import annotations

from typing import Any

from gateway import Component, hookimpl


@hookimpl
def gateway_register_components() -> list[type[Component[Any]]]:
    from gateway_calendar.calendar import Calendar
    from gateway_calendar.sun import Sun

    return [Calendar, Sun]


@hookimpl
def gateway_demo_setup() -> dict[str, Any]:
    # No simulator needed: the sun over London, from the gateway's own clock.
    return {"sun": {"latitude": 51.5, "longitude": -0.12}}
