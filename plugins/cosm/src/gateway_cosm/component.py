"""``[cosm]``: readings from MQTT to a Cosm/Xively-v2 feed, buffered in SQLite so that none is lost.

Every matching reading is written to the buffer at once; every ``interval`` the oldest
``max_batch`` rows go out in one ``PUT <url>/feeds/<feed>.json`` and are deleted only when
the server answers 2xx. Only the HTTP request runs off the component's thread, so the
intake of readings never waits for an upload.
"""

from __future__ import annotations

import functools
import json
import math
from collections import OrderedDict
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from gateway import Component, Context, Message, Timer
from gateway_cosm.config import CosmConfig, Datastream

if TYPE_CHECKING:  # sqlite3 is loaded only when a [cosm] section is configured (in start)
    from gateway_cosm.store import Row, Store

MAX_BACKOFF = 900.0  # seconds; transient failures are retried at least this often
CONFIG_RETRY = 600.0  # seconds between retries while the server calls the request wrong
CONFIG_STATUSES = frozenset({400, 401, 404, 422})
INFO_HOLD = 1.0  # seconds a change of pending alone waits before cosm/info tells it
RECENT_READINGS = 4096  # readings remembered to recognise a copy: a cut link's burst of copies fits
TRANSIENT_4XX = frozenset({403, 408, 429})  # Cosm answers 403 when the rate limit is hit


class UploadError(Exception):
    """A failed upload, with a message built here: never the URL's query, the headers or the key."""

    def __init__(self, message: str, *, config: bool = False) -> None:
        super().__init__(message)
        self.config = config


def iso(at: float) -> str:
    """ISO-8601 UTC with milliseconds and ``Z``, as Cosm writes it."""
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def reading_time(value: Any) -> float | None:
    """Seconds since the epoch of a ``last_seen`` (ISO-8601 text or epoch milliseconds), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) / 1000 if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            return None
        return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
    return None


def body(rows: list[Row]) -> dict[str, Any]:
    """The v2 feed update for ``rows`` (oldest first); current_value is each stream's newest."""
    streams: dict[str, list[Row]] = {}
    for row in rows:
        streams.setdefault(row.stream, []).append(row)
    return {"version": "1.0.0", "datastreams": [
        {"id": stream, "current_value": points[-1].value,
         "datapoints": [{"at": iso(p.at), "value": p.value} for p in points]}
        for stream, points in streams.items()]}


class Cosm(Component[CosmConfig]):
    """Forwards readings to one Cosm feed."""

    section = "cosm"

    def __init__(self, ctx: Context[CosmConfig]) -> None:
        super().__init__(ctx)
        self.config = ctx.config
        self.info_topic = ctx.topic("cosm", "info")
        self.endpoint = f"{self.config.url}/feeds/{self.config.feed}.json"
        self.host = urlsplit(self.config.url).netloc.rpartition("@")[2]  # never user:password@ in messages
        self.store: Store | None = None
        self.session: Any = None
        self.sent = self.dropped = self.skipped = self.duplicates = 0
        self.failures = 0
        self.last_upload: str | None = None
        self.last_error: str | None = None
        self.retry_at: float | None = None  # wall time of the next retry while backing off
        self._retry: Timer | None = None
        self._busy = False
        self._stopped = False
        self._skipped_logged: set[str] = set()
        self._info: dict[str, Any] | None = None
        self._info_due: Timer | None = None  # a cosm/info held back while readings come in
        self._buffer_error: str | None = None  # why the buffer takes no readings, while it does not
        # (stream, reading time, value) of the latest readings that carried their time: a copy of one of them
        # is a duplicate, as QoS 1 allows and a Mosquitto bridge sends after a cut link (mosquitto#2248).
        self._recent: OrderedDict[tuple[str, float, str], None] = OrderedDict()

    # ---- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        import requests

        ctx = self.ctx
        self.session = requests.Session()
        from gateway_cosm.store import Store

        self.store = Store(ctx.data_dir / "cosm.sqlite3")
        for stream in self.config.datastreams:
            topic = stream.topic
            if self.config.shared_group is not None:
                topic = f"$share/{self.config.shared_group}/{topic}"
            ctx.subscribe(topic, functools.partial(self.on_reading, stream))
        ctx.call_every(self.config.interval, self.tick)
        pending = self.store.pending()
        if pending:
            ctx.log.info("%d readings from before the restart wait for upload", pending)
        self._publish_info()

    def stop(self) -> None:
        self._stopped = True
        if self._retry is not None:
            self._retry.cancel()
        self._publish_info()  # what is pending now, rather than as of the last info
        if not self._busy:
            self._close()
        # else: the upload's callback still runs and deletes what the server accepted, then closes.

    def _close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None
        if self.session is not None:
            self.session.close()

    # ---- recording -------------------------------------------------------------------

    def on_reading(self, stream: Datastream, message: Message) -> None:
        if message.retain or self.store is None:
            # A retained state is an old reading, recorded when it was live (or it would be
            # recorded again on every restart).
            return
        now = self.ctx.clock.time()
        parsed = self._parse(stream, message.payload)
        if isinstance(parsed, str):
            self.skipped += 1
            if message.topic not in self._skipped_logged:
                self._skipped_logged.add(message.topic)
                self.ctx.log.warning("skipping readings on %s for datastream %s: %s (logged once per topic)",
                                     message.topic, stream.id, parsed)
            self._publish_info()
            return
        value, at = parsed
        if at is not None:
            key = (stream.id, at, value)
            if key in self._recent:
                self.duplicates += 1
                self._publish_info()
                return
            self._recent[key] = None
            if len(self._recent) > RECENT_READINGS:
                self._recent.popitem(last=False)
        # Due before the row is written: whoever sees the row in the buffer finds its cosm/info due too.
        self._publish_info(pending_only=True)
        try:
            self.store.add(stream.id, now if at is None else at, value)
        except Exception as exc:  # an sqlite3.Error: disk full, read-only, I/O error
            self._buffer_failed(exc)
            return
        if self._buffer_error is not None:
            self._buffer_error = None
            self.ctx.log.info("the buffer in %s takes readings again", self.ctx.data_dir)

    def _buffer_failed(self, exc: Exception) -> None:
        """A reading the buffer could not take: reported once per kind of failure, not once per reading."""
        error = f"cannot buffer readings in {self.ctx.data_dir}: {exc}; readings are lost until it can"
        if error != self._buffer_error:
            self._buffer_error = error
            self.ctx.report_error(self.info_topic, error)

    @staticmethod
    def _parse(stream: Datastream, payload: bytes) -> tuple[str, float | None] | str:
        """(value text, reading time or None), or why the payload is not a reading."""
        try:
            data = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            return "the payload is not JSON" if stream.field else "the payload is not a number"
        at: float | None = None
        if stream.field is None:
            value = data
        else:
            if not isinstance(data, dict) or stream.field not in data:
                return f"no field {stream.field!r} in the payload"
            value = data[stream.field]
            at = reading_time(data.get("last_seen"))
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return f"{'field ' + repr(stream.field) if stream.field else 'the payload'} is not a number"
        return (str(value), at)

    # ---- uploading -------------------------------------------------------------------

    def tick(self) -> None:
        if self.store is None or self._busy:
            return
        self._expire()
        if self._retry is None:
            self.upload()

    def _expire(self) -> None:
        """Drop the rows older than ``retention``; never while they may be in flight."""
        if self.store is None or self._busy:
            return
        dropped = self.store.drop_older(self.ctx.clock.time() - self.config.retention)
        if dropped:
            self.dropped += dropped
            self.ctx.log.warning("dropped %d readings older than the retention of %g s", dropped,
                                 self.config.retention)
            self._publish_info()

    def upload(self) -> None:
        self._retry = None
        self.retry_at = None
        if self.store is None or self._busy or self._stopped:
            return
        self._expire()
        rows = self.store.oldest(self.config.max_batch)
        if not rows:
            return
        self._busy = True
        future = self.ctx.run_blocking(self._put, body(rows))
        future.add_done_callback(lambda done: self._uploaded(done, rows))

    def _put(self, payload: dict[str, Any]) -> int:
        """The request, on a pool thread; its status, or ``UploadError`` with a message of our own."""
        import requests

        timeout = self.config.timeout
        try:
            response = self.session.put(self.endpoint, json=payload, timeout=(timeout, timeout),
                                        headers={"X-ApiKey": self.config.key()}, allow_redirects=False)
            response.close()
        except requests.Timeout:
            raise UploadError(f"no answer from {self.host} within {timeout:g} s") from None
        except requests.ConnectionError:
            raise UploadError(f"cannot connect to {self.host}") from None
        except requests.RequestException as exc:  # its text may hold the URL: name only the kind
            raise UploadError(f"request to {self.host} failed ({type(exc).__name__})") from None
        status: int = response.status_code
        if 200 <= status < 300:
            return status
        what = f"{self.host} answered {status} {response.reason or ''}".rstrip()
        if status in CONFIG_STATUSES or (400 <= status < 500 and status not in TRANSIENT_4XX):
            hint = {401: "the API key is wrong", 404: f"feed {self.config.feed} does not exist",
                    400: "the request was refused", 422: "the data was refused"}.get(status, "check the config")
            raise UploadError(f"{what}: {hint}; readings are kept and retried every "
                              f"{max(CONFIG_RETRY, self.config.interval):g} s", config=True)
        raise UploadError(f"{what}; readings are kept and retried")

    def _uploaded(self, done: Future[int], rows: list[Row]) -> None:
        self._busy = False
        if self.store is None:
            return
        error = done.exception()
        if error is None:
            self.store.delete([row.id for row in rows])
            self.sent += len(rows)
            self.failures = 0
            self.last_upload = iso(self.ctx.clock.time())
            if self.last_error is not None:
                self.ctx.log.info("uploads to %s work again", self.host)
            self.last_error = None
            self._publish_info()
            if self._stopped:
                self._close()
            elif self.store.pending():
                self.ctx.call_soon(self.upload)  # the backlog goes now, not an interval later
            return
        if self._stopped:
            self._close()
            return
        if not isinstance(error, UploadError):  # e.g. cancelled at shutdown: say nothing of its text
            error = UploadError(f"upload failed ({type(error).__name__})")
        self.failures += 1
        message = str(error)
        if error.config:
            delay = max(CONFIG_RETRY, self.config.interval)
            if message != self.last_error:
                self.ctx.report_error(self.info_topic, f"Cosm feed {self.config.feed}: {message}")
        else:
            delay = min(self.config.interval * 2 ** (self.failures - 1), max(MAX_BACKOFF, self.config.interval))
            if message != self.last_error:
                self.ctx.log.warning("upload to Cosm feed %d failed: %s", self.config.feed, message)
        self.last_error = message
        self.retry_at = self.ctx.clock.time() + delay
        self._retry = self.ctx.call_later(delay, self.upload)
        self._publish_info()

    # ---- status ----------------------------------------------------------------------

    def _publish_info(self, *, pending_only: bool = False) -> None:
        """``cosm/info`` if it changed; when only ``pending`` did (a new reading), once ``INFO_HOLD`` is up.

        Published at once for every reading, it would double what a forwarder at the centre of many
        sites receives: its own info, retained, as often as the readings.
        """
        if pending_only:
            if self._info_due is None:
                self._info_due = self.ctx.call_later(INFO_HOLD, self._publish_info)
            return
        if self._info_due is not None:
            self._info_due.cancel()
            self._info_due = None
        if self.store is None:
            return
        info = {"pending": self.store.pending(), "sent": self.sent, "dropped": self.dropped,
                "skipped": self.skipped, "duplicates": self.duplicates, "last_upload": self.last_upload,
                "last_error": self.last_error,
                "failures": self.failures, "retry_at": None if self.retry_at is None else iso(self.retry_at)}
        if info != self._info:
            self._info = info
            self.ctx.publish(self.info_topic, info, retain=True)
