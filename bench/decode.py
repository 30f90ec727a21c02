"""Per-frame decode speed of housebus's RFXtrx decoder against pyRFXtrx's, over every packet type.

Run with ``make bench-decode``. Builds a fixed, seeded corpus with the same number of frames of every
packet type ``gateway_rfxtrx.packets.decode`` reads, drawn the way the pyRFXtrx cross-check test
(plugins/rfxtrx/tests/test_rfxtrx_pyrfxtrx_crosscheck.py) draws them: a subtype housebus knows, the
subtype's length, every payload byte random. That test's generator is a hypothesis strategy (it calls
``event()``, which only works inside a ``@given`` test, and hypothesis has no seeded draw outside one),
so the same rule is written here with ``random.Random(seed)``. Only frames both decoders accept are
kept: a frame pyRFXtrx returns None for or raises on is dropped and counted, and more are drawn until
each type has its share. A type pyRFXtrx does not decode at all (RFXSensor, 0x70) is left out and said so.

Both decoders then decode the whole corpus (types interleaved in a seeded order) and each type's frames
on their own, in alternating rounds, timed with ``time.perf_counter_ns``; the table gives medians over
the rounds in µs per frame and the ratio housebus ÷ pyRFXtrx (below 1 is faster).
It then counts instructions per frame under valgrind's callgrind (unless ``--no-callgrind``; a run that only
loads the corpus is subtracted), a figure that does not depend on what else the machine is doing.

Exits 1 if housebus is slower than pyRFXtrx over the whole corpus (the target: per-frame decode over all
types at least as fast as pyRFXtrx's), naming the types where it is slower.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from gateway_rfxtrx import meters, packets
from RFXtrx import lowlevel

Corpus = dict[int, list[bytes]]
CALLGRIND_TIMEOUT = 60  # seconds per valgrind run (about 9 s each on a 2-core x86-64): a slower machine skips it


def draw_frame(rng: random.Random, ptype: int) -> bytes:
    """One frame of ``ptype``: the cross-check's rule (known subtype, its length, random payload)."""
    sub = rng.choice(sorted(packets.SUBTYPE_NAMES[ptype]))
    length = meters.SUBTYPE_LENGTHS.get(ptype, {}).get(sub) or max(packets.FIXED_LENGTHS[ptype])
    return bytes((length, ptype, sub)) + rng.randbytes(length - 2)


def pyrfxtrx_accepts(frame: bytes) -> bool:
    try:
        return lowlevel.parse(bytearray(frame)) is not None
    except Exception:  # pyRFXtrx raises KeyError/AttributeError on some byte values: such frames are dropped
        return False


def build_corpus(per_type: int, seed: int) -> tuple[Corpus, dict[int, int], list[int]]:
    """Frames per type both decoders accept, how many pyRFXtrx refused per type, and the types it never takes."""
    rng = random.Random(seed)
    corpus: Corpus = {}
    refused: dict[int, int] = {}
    unsupported: list[int] = []
    for ptype in sorted(packets._READINGS):
        frames: list[bytes] = []
        refused[ptype] = 0
        attempts = 0
        while len(frames) < per_type:
            attempts += 1
            if attempts > 100 * per_type + 1000:
                break
            frame = draw_frame(rng, ptype)
            reading = packets.decode(frame)  # raises if housebus refuses: every drawn frame is well formed
            assert isinstance(reading, packets.Reading)
            if pyrfxtrx_accepts(frame):
                frames.append(frame)
            else:
                refused[ptype] += 1
        if len(frames) < per_type:
            unsupported.append(ptype)
        else:
            corpus[ptype] = frames
    return corpus, refused, unsupported


def time_ns(decode: Callable[[Any], object], frames: list[Any]) -> int:
    gc.collect()
    start = time.perf_counter_ns()
    for frame in frames:
        decode(frame)
    return time.perf_counter_ns() - start


def interleaved(corpus: Corpus, seed: int) -> list[bytes]:
    mixed = [frame for frames in corpus.values() for frame in frames]
    random.Random(seed + 1).shuffle(mixed)
    return mixed


def measure(corpus: Corpus, seed: int, rounds: int) -> tuple[dict[str, list[float]], dict[int, dict[str, list[float]]]]:
    """µs per frame for each decoder in each round: over the interleaved corpus, and per type."""
    ours = packets.decode
    theirs = lowlevel.parse
    mixed = interleaved(corpus, seed)
    # pyRFXtrx is fed bytearrays, as its transport reads them; converted once, outside the timing.
    inputs = {"housebus": (ours, mixed), "pyRFXtrx": (theirs, [bytearray(f) for f in mixed])}
    per_type_inputs = {t: {"housebus": (ours, fs), "pyRFXtrx": (theirs, [bytearray(f) for f in fs])}
                       for t, fs in corpus.items()}
    overall: dict[str, list[float]] = {"housebus": [], "pyRFXtrx": []}
    by_type: dict[int, dict[str, list[float]]] = {t: {"housebus": [], "pyRFXtrx": []} for t in corpus}
    for _ in range(2):  # warm-up: first-call caches, lazy imports, allocator arenas
        for decode, frames in inputs.values():
            time_ns(decode, frames)
    for r in range(rounds):
        order = ("housebus", "pyRFXtrx") if r % 2 == 0 else ("pyRFXtrx", "housebus")
        for name in order:
            decode, frames = inputs[name]
            overall[name].append(time_ns(decode, frames) / len(frames) / 1000)
        for ptype, named in per_type_inputs.items():
            for name in order:
                decode, frames = named[name]
                by_type[ptype][name].append(time_ns(decode, frames) / len(frames) / 1000)
    return overall, by_type


# ---- instruction counts under callgrind -------------------------------------------------------------------


def _callgrind_child(name: str, path: str) -> None:
    with open(path, "rb") as f:  # the parent's interleaved corpus, frames back to back (each self-delimiting)
        data = f.read()
    frames: list[bytes] = []
    at = 0
    while at < len(data):
        frames.append(data[at:at + data[at] + 1])
        at += data[at] + 1
    arrays = [bytearray(f) for f in frames]  # made in every run, so the baseline subtracts it
    if name == "housebus":
        for frame in frames:
            packets.decode(frame)
    elif name == "pyRFXtrx":
        for array in arrays:
            lowlevel.parse(array)


def callgrind_counts(frames: list[bytes]) -> dict[str, float] | None:
    """Instructions per frame for each decoder: a run that decodes, less a run that only loads the corpus."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        print("callgrind: valgrind not found, skipped")
        return None
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    collected: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, "corpus.bin")
        with open(corpus, "wb") as out:
            out.write(b"".join(frames))
        for name in ("baseline", "housebus", "pyRFXtrx"):
            try:
                run = subprocess.run(
                    [valgrind, "--tool=callgrind", f"--callgrind-out-file={tmp}/{name}.out", sys.executable,
                     os.path.abspath(__file__), "--child", name, "--corpus", corpus],
                    capture_output=True, text=True, env=env, timeout=CALLGRIND_TIMEOUT, check=True)
            except subprocess.TimeoutExpired:
                print(f"callgrind: the {name} run took over {CALLGRIND_TIMEOUT} s, skipped")
                return None
            match = re.search(r"Collected\s*:\s*(\d+)", run.stderr)
            if match is None:
                print(f"callgrind: no instruction count in valgrind's output for {name}, skipped")
                return None
            collected[name] = int(match.group(1))
    return {n: (collected[n] - collected["baseline"]) / len(frames) for n in ("housebus", "pyRFXtrx")}


# ---- report -----------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-type", type=int, default=1000, help="frames of each packet type (default 1000)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per decoder, alternating (default 5)")
    parser.add_argument("--seed", type=int, default=20260101)
    parser.add_argument("--no-callgrind", dest="callgrind", action="store_false",
                        help="skip counting instructions per frame with valgrind (three runs of about 9 s)")
    parser.add_argument("--child", choices=("baseline", "housebus", "pyRFXtrx"), help=argparse.SUPPRESS)
    parser.add_argument("--corpus", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _callgrind_child(args.child, args.corpus)
        return 0

    corpus, refused, unsupported = build_corpus(args.per_type, args.seed)
    total = sum(len(f) for f in corpus.values())
    print(f"corpus: {args.per_type} frames x {len(corpus)} packet types = {total} frames (seed {args.seed}); "
          f"{sum(refused[t] for t in corpus)} drawn frames pyRFXtrx refused were dropped")
    for ptype in unsupported:
        print(f"  0x{ptype:02x} {packets.TYPE_NAMES[ptype]}: left out, pyRFXtrx refused all {refused[ptype]} drawn")
    print(f"timing: {args.rounds} alternating rounds each, medians, perf_counter_ns, Python {sys.version.split()[0]}")
    print()

    overall, by_type = measure(corpus, args.seed, args.rounds)
    slower: list[str] = []
    print(f"{'type':<38} {'refused':>7} {'housebus µs':>11} {'pyRFXtrx µs':>11} {'ratio':>6}")
    for ptype, times in by_type.items():
        ours, theirs = statistics.median(times["housebus"]), statistics.median(times["pyRFXtrx"])
        label = f"0x{ptype:02x} {packets.TYPE_NAMES[ptype]}"
        mark = "  slower" if ours > theirs else ""
        if ours > theirs:
            slower.append(label)
        print(f"{label:<38} {refused[ptype]:>7} {ours:>11.2f} {theirs:>11.2f} {ours / theirs:>6.2f}{mark}")
    ours, theirs = statistics.median(overall["housebus"]), statistics.median(overall["pyRFXtrx"])
    print(f"{'all types, interleaved (median)':<38} {'':>7} {ours:>11.2f} {theirs:>11.2f} {ours / theirs:>6.2f}")
    rounds = ", ".join(f"{a / b:.2f}" for a, b in zip(overall["housebus"], overall["pyRFXtrx"], strict=True))
    print(f"  ratio per round: {rounds}")

    if args.callgrind:
        started = time.monotonic()
        mixed = interleaved(corpus, args.seed)
        per_frame = callgrind_counts(mixed)
        if per_frame is not None:
            print(f"instructions per frame (callgrind, {len(mixed)} frames, {time.monotonic() - started:.0f} s): "
                  f"housebus {per_frame['housebus']:,.0f}, pyRFXtrx {per_frame['pyRFXtrx']:,.0f}, "
                  f"ratio {per_frame['housebus'] / per_frame['pyRFXtrx']:.2f}")

    if ours > theirs:
        print(f"FAIL: housebus decodes slower than pyRFXtrx overall ({ours / theirs:.2f}x); slower types: "
              + (", ".join(slower) or "none on its own"))
        return 1
    if slower:
        print("slower types (overall target met): " + ", ".join(slower))
    print(f"OK: housebus decodes at {ours / theirs:.2f}x pyRFXtrx's time per frame")
    return 0


if __name__ == "__main__":
    sys.exit(main())
