"""``[example_log.<name>]``: an output component, the model for plugins that act on readings.

It follows device states on MQTT, writes each reading to the example line device through
the ``example.write`` service, and keeps a count and the last reading per device in a file
that survives restarts. What it did goes out on ``<base>/example_log/<name>``.
"""

from __future__ import annotations

import json
import os
import tempfile
from concurrent.futures import Future, wait
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import field_validator

from gateway import Component, ConfigModel, Context, Message

SAVE_WAIT = 0.5  # how long stop() waits for a save in progress before writing its own


class ExampleLogConfig(ConfigModel):
    topic: str  # below the base topic, e.g. "rf12/+"; "+" and "#" as in any MQTT filter

    @field_validator("topic")
    @classmethod
    def _filter(cls, value: str) -> str:
        levels = value.split("/")
        if (not value or "#" in value[:-1] or (value.endswith("#") and levels[-1] != "#")
                or any("+" in level and level != "+" for level in levels)):
            raise ValueError("must be a topic filter such as rf12/+ or rfxtrx/#")
        return value


class ExampleLog(Component[ExampleLogConfig]):
    """Writes every reading on ``topic`` to the example device and counts the readings per device."""

    section = "example_log"
    instances = True  # [example_log.display], [example_log.archive], ...: one component each
    requires = ("example.write",)

    def __init__(self, ctx: Context[ExampleLogConfig]) -> None:
        super().__init__(ctx)
        self.state_topic = f"{ctx.section}/{ctx.instance}"  # example_log/display, below the base topic
        self.devices: dict[str, dict[str, Any]] = {}  # device -> {"count", "last", "result"}
        self.saving: Future[None] | None = None
        self.dirty = False  # changed since the last snapshot handed to a save
        self.failure: tuple[str, int | None] | None = None  # how the last save failed, while saves fail

    def start(self) -> None:
        # Reading a small file once is quick enough for start(); the saves, one per reading, go off-thread.
        self.path = self.ctx.data_dir / "devices.json"
        if self.path.exists():
            self.devices = json.loads(self.path.read_text())  # a damaged file stops us rather than being lost
        self.write = self.ctx.service("example.write")
        self.ctx.subscribe(self.ctx.topic(self.ctx.config.topic), self.on_reading)

    def on_reading(self, message: Message) -> None:
        device = message.topic.removeprefix(self.ctx.base_topic + "/")
        if device == self.state_topic or device.rpartition("/")[2] in ("availability", "info"):
            return  # our own state, and the plugin topics that sit beside the devices
        try:
            reading = json.loads(message.payload)
        except ValueError:
            return
        if not isinstance(reading, dict):
            return  # not a device state: one field of output = "attributes", for instance
        known = self.devices.get(device, {"count": 0})
        if message.retain and known.get("last") == reading:
            return  # the broker's retained copy, sent as we subscribe, of a reading we have counted
        self.devices[device] = {**known, "count": known["count"] + 1, "last": reading}
        self.save()
        line = f"{device} {json.dumps(reading, separators=(',', ':'))}"
        self.write(line).add_done_callback(partial(self.written, device))

    def written(self, device: str, future: Future[str]) -> None:
        # A callback of a service call: it runs on this component's thread, so it may touch self.devices.
        try:
            result = future.result()
        except Exception as exc:  # ConnectionError when the device is away, TimeoutError without an echo
            result = f"failed: {type(exc).__name__}: {exc}"
        entry = self.devices[device]
        entry["result"] = result
        self.save()
        self.ctx.publish_state(self.state_topic, {"device": device, "count": entry["count"], "result": result})

    def save(self) -> None:
        """Write ``self.devices`` to the data file off this thread, one write at a time."""
        if self.saving is not None:
            self.dirty = True  # saved() starts the next write: an older snapshot never overtakes a newer one
            return
        self.dirty = False
        snapshot = json.dumps(self.devices, sort_keys=True)  # taken here: the pool thread never sees the dict
        self.saving = self.ctx.run_blocking(write_atomically, self.path, snapshot)
        self.saving.add_done_callback(self.saved)

    def saved(self, future: Future[None]) -> None:
        self.saving = None
        exc = None if future.cancelled() else future.exception()
        # A full or read-only disk fails every save: reported once per kind of failure, not once per reading.
        failure = None if exc is None else (type(exc).__name__, getattr(exc, "errno", None))
        if failure is not None and failure != self.failure:
            self.ctx.report_error(self.ctx.topic(self.state_topic), f"could not save {self.path}: {exc}")
        elif failure is not None:
            self.ctx.log.debug("could not save %s: %s", self.path, exc)
        elif self.failure is not None:
            self.ctx.log.info("%s is saved again", self.path)
        self.failure = failure
        if self.dirty:
            self.save()

    def stop(self) -> None:
        # The last readings may not be saved yet. Write them here, but only once the save in progress
        # is done: the older snapshot it holds must not replace ours.
        if self.saving is not None and wait([self.saving], timeout=SAVE_WAIT).not_done:
            self.ctx.log.warning("%s is slow to write: the last readings are not saved", self.path)
        elif self.dirty:
            write_atomically(self.path, json.dumps(self.devices, sort_keys=True))
            self.dirty = False


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` by a file holding ``text``: after a crash it holds the old text or the new, never half."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())  # the data is on disk before the new name points at it
        os.replace(temp, path)
    except BaseException:
        os.unlink(temp)
        raise
