"""The data dir fills up or turns read-only under a running gateway: a clear error, once, and the radios go on.

The components that write to their data dir are cosm (its SQLite buffer, a write per reading),
the example plugin's ``[example_log.<name>]`` (``devices.json``, a save per reading) and
ledstrip (``ledstrip.json``, a save per confirmed command). rfxtrx and rf12 write nothing there.

* Disk full: the data dir is a 256 KiB tmpfs, which the test fills with a file.
* Read-only: ``mount -o remount,ro`` is refused while the gateway holds files open for writing
  ("mount point is busy"), and a read-only bind mount does not touch files already open. What
  does turn a data dir read-only under open files is the kernel, when a file system with
  ``errors=remount-ro`` hits an error: here an ext4 image on a loop device, made to fail through
  ext4's ``trigger_fs_error``. Writes through open files then fail with EROFS too.

Target: each writing component reports the condition once on ``bridge/error`` (ledstrip once
per command whose state it cannot keep) and in the log, without a traceback, and the RFXtrx
readings keep arriving on MQTT. Everything is unmounted in teardown, whatever happened.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from gateway_cosm.server import CosmServer
from gateway_example import EchoSimulator
from gateway_rf12.simulator import JeeLinkSimulator
from gateway_rfxtrx.simulator import RfxtrxSimulator, temp_hum_frame

from gateway.testing import MqttWatch, wait_until

pytestmark = pytest.mark.broker

ADDRESS = 0xD15C
DEVICE = f"rfxtrx/52_02_{ADDRESS:04x}"
READINGS = 20  # while the condition lasts
KEY = "disk-test-key"
WAIT = 20.0
WRITERS = ("cosm", "example_log.archive", "ledstrip.kitchen")


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False)


@pytest.fixture
def mounts(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """``mounts(kind)``: a fresh mount point holding a ``tmpfs`` (256 KiB) or an ``ext4`` image (errors=remount-ro).

    Unmounted at teardown, lazily if something still holds it.
    """
    made: list[Path] = []

    def mount(kind: str) -> Path:
        point = tmp_path / f"mnt-{kind}"
        point.mkdir()
        if kind == "tmpfs":
            command = ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(point)]
        else:
            image = tmp_path / "data.ext4"
            image.write_bytes(b"")
            os.truncate(image, 8 << 20)
            made_fs = run("mkfs.ext4", "-q", str(image))
            if made_fs.returncode:
                pytest.skip(f"cannot make an ext4 image: {made_fs.stderr.strip()}")
            command = ["mount", "-o", "loop,errors=remount-ro", str(image), str(point)]
        done = run(*command)
        if done.returncode:
            pytest.skip(f"mount is not permitted here ({' '.join(command)}: {done.stderr.strip()})")
        made.append(point)
        return point

    yield mount
    for point in reversed(made):
        if run("umount", str(point)).returncode:
            run("umount", "-l", str(point))


def fill(folder: Path) -> Path:
    """Write a file into ``folder`` until the file system is full; the file, to free the space again."""
    path = folder / "filler"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, bytes(4096))
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
    finally:
        os.close(fd)
    return path


def saved(path: Path, predicate: Callable[[Any], bool]) -> bool:
    try:
        return bool(predicate(json.loads(path.read_text())))
    except (OSError, ValueError, KeyError):
        return False


def make_read_only(point: Path) -> None:
    """What the kernel does to an ext4 with errors=remount-ro after an error: read-only under open files."""
    device = Path(subprocess.run(["findmnt", "-n", "-o", "SOURCE", str(point)], capture_output=True, text=True,
                                 check=True).stdout.strip())
    trigger = Path("/sys/fs/ext4") / device.name / "trigger_fs_error"
    if not trigger.exists():
        pytest.skip(f"this kernel has no {trigger}: no way to make ext4 fail here")
    trigger.write_text("housebus fault test\n")
    options = run("findmnt", "-n", "-o", "OPTIONS", str(point)).stdout
    assert options.startswith("ro") or "emergency_ro" in options, options


@dataclass
class Rig:
    gw: Any
    watch: MqttWatch
    rfx: RfxtrxSimulator
    gw_data: Path
    temperature: float = 10.0

    @property
    def base(self) -> str:
        return str(self.gw.base)

    def reading(self) -> None:
        """One RFXtrx reading, waited for on MQTT (its own temperature), and for the archive's record of it."""
        self.temperature = round(self.temperature + 0.1, 1)
        t = self.temperature
        mark = self.watch.mark()
        assert self.rfx.inject(temp_hum_frame(ADDRESS, t, 50))
        self.watch.wait_json(f"{self.base}/{DEVICE}", lambda s: s["temperature"] == t, after=mark, timeout=WAIT)
        # example_log writes the reading to its device, which echoes it in capitals, and publishes the outcome.
        self.watch.wait_json(f"{self.base}/example_log/archive", lambda s: f'"TEMPERATURE":{t},' in s["result"],
                             after=mark, timeout=WAIT)

    def cosm_barrier(self) -> dict[str, Any]:
        """The cosm/info after cosm handled everything before: a non-number on its second datastream is skipped."""
        mark = self.watch.mark()
        self.watch.publish(f"{self.base}/barrier", "not a number")
        info: dict[str, Any] = self.watch.wait_json(f"{self.base}/cosm/info", after=mark, timeout=WAIT)
        return info

    def strip(self, colour: tuple[int, int, int]) -> None:
        """A command to the LED strip, waited for until its state is published (the save follows it)."""
        r, g, b = colour
        mark = self.watch.mark()
        self.watch.publish(f"{self.base}/ledstrip/kitchen/set", {"state": "ON", "color": {"r": r, "g": g, "b": b}})
        self.watch.wait_json(f"{self.base}/ledstrip/kitchen", lambda s: s["color"] == {"r": r, "g": g, "b": b},
                             after=mark, timeout=WAIT)

    def errors(self, after: int) -> list[dict[str, Any]]:
        return [m.json() for m in self.watch.received(f"{self.base}/bridge/error", after)]


@pytest.fixture
def rig(run_gateway: Callable[..., Any], tmp_path: Path) -> Iterator[Callable[[Path], Rig]]:
    """``rig(data_dir)``: a gateway with rfxtrx, cosm, rf12 + ledstrip, example + example_log on ``data_dir``."""
    closers: list[Callable[[], None]] = []

    def make(data_dir: Path) -> Rig:
        rfx = RfxtrxSimulator.on_pty(tmp_path / "ttyRFX")
        jee = JeeLinkSimulator(tmp_path / "ttyRF12")
        line = EchoSimulator(tmp_path / "ttyLINE", interval=3600)
        server = CosmServer(api_key=KEY).start()
        closers.extend((rfx.close, jee.close, line.stop, server.close))
        gw = run_gateway({
            "rfxtrx": {"port": rfx.url},
            # interval: no upload during the test; what is measured is the intake of readings.
            "cosm": {"url": server.url, "feed": 1, "api_key": KEY, "interval": 3600, "datastreams": [
                {"id": "temperature", "topic": f"housebus/f/+/{DEVICE}", "field": "temperature"},
                {"id": "barrier", "topic": "housebus/f/+/barrier"}]},
            "rf12": {"port": jee.url, "node_id": 31, "group": 212},
            "ledstrip": {"kitchen": {"node": 1, "group": 19}},
            "example": {"port": line.port.url, "name": "console"},
            "example_log": {"archive": {"topic": DEVICE}},
        }, data_dir=data_dir)
        closers.append(gw.stop)
        for plugin in ("rfxtrx", "rf12", "example"):
            gw.watch.wait_for(f"{gw.base}/{plugin}/availability", lambda m: m.text == "online", timeout=WAIT)
        return Rig(gw, gw.watch, rfx, data_dir)

    yield make
    for close in reversed(closers):  # the gateway first: then nothing holds the mounts
        with contextlib.suppress(Exception):
            close()


def check_condition(rig: Rig, condition: str, start: Callable[[], None], figure: Callable[..., None]) -> None:
    """Readings and a strip command while ``condition`` lasts: one error per writer, and all readings published."""
    rig.reading()
    rig.strip((10, 20, 30))
    before = rig.cosm_barrier()["pending"]
    assert before >= 1, "cosm did not buffer the reading before the fault"
    # The saves of the other two run off their threads and say nothing when they succeed: their files show it.
    data = rig.gw_data
    wait_until(lambda: saved(data / "ledstrip.kitchen" / "ledstrip.json", lambda d: d["light"]["color"] == {
        "r": 10, "g": 20, "b": 30}), timeout=WAIT, what="the strip's state saved")
    wait_until(lambda: saved(data / "example_log.archive" / "devices.json", lambda d: d[DEVICE]["last"][
        "temperature"] == rig.temperature and "result" in d[DEVICE]), timeout=WAIT, what="the archive saved")
    log_before = len(rig.gw.log_text())
    mark = rig.watch.mark()
    start()
    published = 0
    for _ in range(READINGS):
        rig.reading()
        published += 1
    rig.strip((40, 50, 60))
    for writer in ("ledstrip/kitchen", "example_log/archive"):  # their saves fail off their threads, later
        with contextlib.suppress(TimeoutError):  # a writer that says nothing is counted below
            rig.watch.wait_json(f"{rig.base}/bridge/error", lambda e, w=writer: e["topic"] == f"{rig.base}/{w}",
                                after=mark, timeout=WAIT)
    after = rig.cosm_barrier()
    errors = rig.errors(mark)
    # Which writer: cosm reports on cosm/info, the archive on its state topic, the strip on its device topic.
    by_writer = {
        "cosm": [e for e in errors if e["topic"] == f"{rig.base}/cosm/info"],
        "example_log.archive": [e for e in errors if e["topic"] == f"{rig.base}/example_log/archive"],
        "ledstrip.kitchen": [e for e in errors if e["topic"] == f"{rig.base}/ledstrip/kitchen"],
    }
    others = [e for e in errors if all(e not in found for found in by_writer.values())]
    log = rig.gw.log_text()[log_before:]
    logged = all(e["error"] in log for e in errors)
    counts = {writer: len(found) for writer, found in by_writer.items()}
    ok = (all(n == 1 for n in counts.values()) and not others and logged and "Traceback" not in log
          and published == READINGS and rig.gw.alive() and after["pending"] == before)
    figure(f"data dir {condition}",
           f"errors per writer {counts}, {len(others)} others, in log: {logged}, tracebacks: {log.count('Traceback')}; "
           f"{published}/{READINGS} readings published",
           "1 error per writer (strip: per command), logged; every reading published", ok)
    assert rig.gw.alive(), log[-3000:]
    assert published == READINGS
    assert counts == dict.fromkeys(WRITERS, 1), errors
    assert not others, others
    assert logged, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    assert after["pending"] == before  # nothing could be buffered, and nothing was pretended


def test_a_full_data_dir_is_reported_once_per_writer_and_the_radios_go_on(rig, mounts, figure):
    data = mounts("tmpfs")
    r = rig(data)
    filler: list[Path] = []
    check_condition(r, "full (256 KiB tmpfs)", lambda: filler.append(fill(data)), figure)

    # Room again: the writers go on writing, and say so no more.
    filler[0].unlink()
    mark = r.watch.mark()
    pending = r.cosm_barrier()["pending"]
    r.reading()
    assert r.cosm_barrier()["pending"] == pending + 1
    r.strip((70, 80, 90))
    assert json.loads((data / "ledstrip.kitchen" / "ledstrip.json").read_text())["light"]["color"] == {
        "r": 70, "g": 80, "b": 90}
    assert r.errors(mark) == []


def test_a_data_dir_turned_read_only_is_reported_once_per_writer_and_the_radios_go_on(rig, mounts, figure):
    data = mounts("ext4")
    r = rig(data)
    check_condition(r, "read-only (ext4 errors=remount-ro)", lambda: make_read_only(data), figure)
