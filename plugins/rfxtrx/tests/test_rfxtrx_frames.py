"""Framing and resynchronisation, with hypothesis properties over random byte streams."""

from __future__ import annotations

import contextlib
import itertools

from gateway_rfxtrx import packets
from gateway_rfxtrx.frames import MIN_LENGTH, FrameReader
from hypothesis import event, given, settings
from hypothesis import strategies as st

GOOD = bytes.fromhex("0a520211700200a72d0089")
VECTORS = [bytes.fromhex(x) for x in (
    "0a520211700200a72d0089", "07 10 00 2a 45 05 01 70", "0b 11 00 2a 01 23 45 67 05 02 08 70",
    "0a 14 00 2a 12 34 56 07 10 11 70", "08 20 00 4d d3 dc 54 00 89", "0d 54 02 0e e9 00 00 c9 27 02 03 e7 04 39",
    "0b 55 02 03 12 34 02 50 01 23 45 57", "10 56 01 03 2f 00 00 f7 00 20 00 24 81 60 82 50 59",
    "11 5a 01 07 1a 73 00 00 00 03 f6 00 00 00 00 35 0b 89", "04 02 01 00 00",
    "14 01 07 03 07 43 6f 70 79 72 69 67 68 74 20 52 46 58 43 4f 4d",
)]


def test_whole_and_split_frames():
    reader = FrameReader()
    assert reader.feed(GOOD + GOOD, 0.0) == [GOOD, GOOD]
    assert reader.feed(GOOD[:3], 0.0) == []
    assert reader.feed(GOOD[3:], 0.1) == [GOOD]
    assert reader.counters.frames == 3 and reader.counters.resyncs == 0


def test_leading_zeros_and_bad_lengths_are_skipped():
    reader = FrameReader()
    assert reader.feed(b"\x00\x00\x03\xff\x0b\x52" + GOOD, 0.0) == [GOOD]  # 0b 52: wrong length for type 52
    assert reader.counters.resyncs == 1 and reader.counters.skipped_bytes == 6


def test_each_loss_of_sync_is_counted_once_also_after_a_flush():
    reader = FrameReader()
    assert reader.feed(b"\x00\x01" + GOOD + b"\x02", 0.0) == [GOOD]
    assert reader.feed(b"\x03" + GOOD, 0.0) == [GOOD]  # the second loss ends with this frame
    assert (reader.counters.resyncs, reader.counters.skipped_bytes) == (2, 4)
    reader.feed(b"\x00", 0.0)  # sync lost, and the reset's flush comes in the middle of it
    reader.clear()
    reader.feed(b"\x01" + GOOD, 0.0)
    assert (reader.counters.resyncs, reader.counters.skipped_bytes) == (4, 6)


def test_a_length_that_does_not_suit_its_type_is_skipped_as_soon_as_the_type_is_seen():
    reader = FrameReader()
    assert reader.feed(b"\x0b\x52", 0.0) == []  # 0x52 frames are 0x0a long
    assert reader.counters.skipped_bytes == 1 and reader.pending == 1  # 52 may be a length: wait for more


def test_partial_frame_times_out():
    reader = FrameReader(timeout=0.5)
    assert reader.feed(GOOD[:5], 0.0) == []
    assert reader.feed(GOOD, 1.0) == [GOOD]  # the stale half frame is dropped, not glued to this one
    assert reader.counters.partial_timeouts == 1


def test_a_partial_frame_is_given_up_once_it_is_timeout_old_and_each_is_counted():
    reader = FrameReader(timeout=0.5)
    assert reader.feed(GOOD[:5], 0.0) == []
    assert reader.feed(GOOD, 0.5) == [GOOD]  # exactly `timeout` later: the half frame is stale
    assert reader.feed(GOOD[:7], 1.0) == []
    assert reader.expire(1.5) and reader.pending == 0
    assert reader.counters.partial_timeouts == 2


def test_expire_without_new_data():
    reader = FrameReader(timeout=0.5)
    reader.feed(GOOD[:5], 0.0)
    assert not reader.expire(0.2)
    assert reader.expire(0.6) and reader.pending == 0


def test_clear_is_the_flush():
    reader = FrameReader()
    reader.feed(GOOD[:4], 0.0)
    reader.clear()
    assert reader.feed(GOOD, 0.0) == [GOOD]


def test_vectors_parse_as_single_frames():
    for frame in VECTORS:
        assert FrameReader().feed(frame, 0.0) == [frame]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=20))
def test_random_streams_never_raise(chunks):
    reader = FrameReader()
    for i, chunk in enumerate(chunks):
        for frame in reader.feed(chunk, i * 0.1):
            assert len(frame) == frame[0] + 1
            with contextlib.suppress(packets.DecodeError):  # reported by the component, never raised
                packets.decode(frame)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.sampled_from(VECTORS))
def test_valid_frame_after_garbage_is_decoded(garbage, frame):
    """Garbage, a pause longer than the partial timeout, then a good frame: the good frame comes out."""
    reader = FrameReader(timeout=0.5)
    reader.feed(garbage, 0.0)
    assert reader.feed(frame, 1.0)[-1:] == [frame]


@st.composite
def impossible_lengths_then_frame(draw: st.DrawFn) -> tuple[bytes, bytes, list[int]]:
    """Length bytes 00-03 (none can start a frame), a good frame, and where to cut the two into chunks.

    Most cuts fall inside the garbage, so a chunk often ends on an impossible length byte:
    alone in the buffer, such a byte cannot be judged by the byte after it.
    """
    garbage = bytes(draw(st.lists(st.integers(0, MIN_LENGTH - 1), min_size=1, max_size=50)))
    frame = draw(st.sampled_from(VECTORS))
    cuts = draw(st.lists(st.integers(1, len(garbage)), max_size=4))
    cuts += draw(st.lists(st.integers(len(garbage) + 1, len(garbage) + len(frame) - 1), max_size=2))
    return garbage, frame, sorted(set(cuts))


@settings(max_examples=200, deadline=None)
@given(impossible_lengths_then_frame())
def test_valid_frame_after_impossible_lengths_without_pause(case):
    garbage, frame, cuts = case
    data = garbage + frame
    chunk_ends = [data[cut - 1] for cut in cuts if cut <= len(garbage)]
    event("a chunk ends on an impossible length byte" if chunk_ends else "no chunk ends inside the garbage")
    if 0 in chunk_ends:
        event("a chunk ends on a 00 byte")
    reader = FrameReader()
    out = []
    bounds = [0, *cuts, len(data)]
    for start, stop in itertools.pairwise(bounds):
        out += reader.feed(data[start:stop], 0.0)
    assert out == [frame]
    assert reader.counters.skipped_bytes == len(garbage) and reader.counters.resyncs == 1


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(VECTORS), st.integers(min_value=1, max_value=10))
def test_any_chunking_gives_the_same_frames(frame, cut):
    reader = FrameReader()
    data = frame * 3
    out = []
    for i in range(0, len(data), cut):
        out += reader.feed(data[i:i + cut], 0.0)
    assert out == [frame] * 3


@st.composite
def plausible_frames(draw: st.DrawFn) -> bytes:
    """A frame whose length byte suits its type, with any bytes in it; mostly of a type and subtype we decode."""
    ptype = draw(st.sampled_from(sorted(packets.FIXED_LENGTHS)) | st.sampled_from(sorted(packets.LENGTHS)))
    length = draw(st.sampled_from(sorted(packets.LENGTHS[ptype])))
    body = bytearray(draw(st.binary(min_size=length - 1, max_size=length - 1)))
    known = sorted(packets.SUBTYPE_NAMES.get(ptype, {0x00: "", 0x07: "", 0xFF: ""} if ptype == 0x01 else {}))
    if known and draw(st.integers(0, 3)):
        body[0] = draw(st.sampled_from(known))
    return bytes((length, ptype)) + bytes(body)


@settings(max_examples=500, deadline=None)
@given(plausible_frames())
def test_every_frame_the_reader_passes_on_decodes_or_is_of_an_unknown_kind(frame):
    """The component counts on this: a frame out of the reader is never malformed for the decoder."""
    assert FrameReader().feed(frame, 0.0) == [frame]
    try:
        packet = packets.decode(frame)
    except packets.UnknownPacketError:
        event("unknown type or subtype")
    else:
        event(f"decoded: {type(packet).__name__}")
