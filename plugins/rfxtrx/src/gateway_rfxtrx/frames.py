"""Cutting the RFXtrx byte stream into frames, and finding the frames again after noise.

The protocol has no start byte and no checksum: a frame is a length byte and that many
bytes. One lost or extra byte would make every later length wrong, so a frame start is
only believed when its length suits its packet type (``packets.plausible``); otherwise one
byte is dropped and the next is tried. A frame whose rest never arrives (a stick reset
mid-frame, a truncated capture) would block the stream for good, so a partial frame older
than ``timeout`` is dropped when more data comes, or when ``expire`` is called.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway_rfxtrx.packets import plausible

MIN_LENGTH = 4  # below this the length byte cannot be right: the shortest frame is 04 02 ...


@dataclass
class FrameCounters:
    frames: int = 0
    resyncs: int = 0  # times the stream lost sync and bytes were skipped
    skipped_bytes: int = 0
    partial_timeouts: int = 0  # incomplete frames dropped because the rest never came


class FrameReader:
    """Turns chunks of bytes into whole frames.

    Args:
        timeout: seconds after which an incomplete frame is given up.
    """

    def __init__(self, timeout: float = 0.5) -> None:
        self.timeout = timeout
        self.counters = FrameCounters()
        self._buf = bytearray()
        self._since = 0.0  # when the buffered partial frame started
        self._skipping = False

    def clear(self) -> None:
        """Forget buffered bytes, e.g. on the flush after a reset."""
        self._buf.clear()
        self._skipping = False

    @property
    def pending(self) -> int:
        return len(self._buf)

    def expire(self, now: float) -> bool:
        """Drop a partial frame older than ``timeout``; True if one was dropped."""
        if self._buf and now - self._since >= self.timeout:
            self.counters.partial_timeouts += 1
            self._buf.clear()
            return True
        return False

    def feed(self, data: bytes, now: float) -> list[bytes]:
        """Add received bytes; returns the frames they completed (length byte included)."""
        buf = self._buf
        if buf:
            self.expire(now)
        if not buf:
            self._since = now
        buf += data
        frames: list[bytes] = []
        counters = self.counters
        while buf:
            length = buf[0]
            if length < MIN_LENGTH or (len(buf) > 1 and not plausible(length, buf[1])):
                if not self._skipping:
                    counters.resyncs += 1
                    self._skipping = True
                counters.skipped_bytes += 1
                del buf[0]
                self._since = now
                continue
            if len(buf) <= length:
                break  # wait for the rest
            frames.append(bytes(buf[:length + 1]))
            del buf[:length + 1]
            counters.frames += 1
            self._skipping = False
            self._since = now
        return frames
