"""A worker holds few serial reads, however large its queue: the rest of the data waits in the OS buffer."""

from __future__ import annotations

import logging
import threading

from gateway.testing import wait_until
from gateway.worker import READS_QUEUED, Worker


def test_a_reader_waits_after_a_few_reads_while_deliveries_still_have_room() -> None:
    worker = Worker("bounds", logging.getLogger("test"), queue_size=1000)
    worker.start()
    release = threading.Event()
    worker.submit(release.wait)  # the component is busy
    ran: list[int] = []
    queued = 0

    def reader() -> None:
        nonlocal queued
        for i in range(READS_QUEUED + 5):
            worker.put(ran.append, i)
            queued += 1

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        wait_until(lambda: worker._waiting == 1, what="the reader to wait for room")
        assert queued == READS_QUEUED
        assert worker.offer(ran.append, "delivery")  # MQTT deliveries are bounded by queue_size only
    finally:
        release.set()
    thread.join(5)
    wait_until(lambda: len(ran) == READS_QUEUED + 6, what="everything to run")
    assert ran[:READS_QUEUED] == list(range(READS_QUEUED)) and "delivery" in ran
    worker.stop()
