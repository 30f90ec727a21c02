"""``make mutation``: mutation testing of the core and the radios with mutmut, and the kill rate per module.

mutmut reads its settings from the ``[tool.mutmut]`` table of the ``pyproject.toml`` in the folder it
runs in, so each target below is run in its own folder: the core at the repository root, each plugin
in ``plugins/<name>``. The mutants a developer judged equivalent, or not worth a test, are listed with
the reason in ``docs/mutation.md``; they are left out of the rate, and this script says which of them
no longer survive (the list is then out of date: mutant numbers change when a function changes).

Usage: ``python tools/mutation.py [--target core|rf12|rfxtrx]... [--resume] [--min 90]``
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {"core": ROOT, "rf12": ROOT / "plugins" / "rf12", "rfxtrx": ROOT / "plugins" / "rfxtrx"}
DOC = ROOT / "docs" / "mutation.md"
MUTANT_NAME = re.compile(r"`([\w.ǁ]+__mutmut_\d+)`")

# mutmut's exit codes (mutmut.stats.status_by_exit_code): a timeout is a kill, since the tests noticed.
KILLED = {1, 3, 36, -24, 24, 152, 255}
SURVIVED = {0}
NO_TESTS = {5, 33}


def documented() -> set[str]:
    """Mutant names that docs/mutation.md lists as equivalent or not worth a test."""
    return set(MUTANT_NAME.findall(DOC.read_text())) if DOC.is_file() else set()


def run_mutmut(folder: Path, children: int, resume: bool) -> float:
    if not resume:
        shutil.rmtree(folder / "mutants", ignore_errors=True)
    mutmut = Path(sys.executable).with_name("mutmut")
    started = time.monotonic()
    # mutmut draws a progress spinner; keep only its last lines so `make mutation` logs stay readable.
    proc = subprocess.run([str(mutmut), "run", "--max-children", str(children)], cwd=folder,
                          capture_output=True, text=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    if proc.returncode != 0:
        print(proc.stdout[-4000:], proc.stderr[-4000:], sep="\n", file=sys.stderr)
        raise SystemExit(f"mutmut failed in {folder} (exit {proc.returncode})")
    return time.monotonic() - started


def results(folder: Path) -> dict[str, dict[str, int | None]]:
    """``{module path: {mutant name: exit code}}`` from the ``.meta`` files mutmut leaves."""
    out: dict[str, dict[str, int | None]] = {}
    mutants = folder / "mutants"
    for meta in sorted(mutants.rglob("*.py.meta")):
        module = str(meta.relative_to(mutants))[: -len(".meta")]
        out[module] = json.loads(meta.read_text())["exit_code_by_key"]
    return out


def report(name: str, folder: Path, excused: set[str], minimum: float) -> tuple[bool, list[str]]:
    ok = True
    undocumented: list[str] = []
    print(f"\n{name}: {folder.relative_to(ROOT) if folder != ROOT else '.'}")
    print(f"  {'module':34} {'mutants':>7} {'killed':>6} {'survived':>8} {'no tests':>8} {'excused':>7} {'rate':>6}")
    for module, codes in results(folder).items():
        tally: Counter[str] = Counter()
        for mutant, code in codes.items():
            if code in KILLED:
                tally["killed"] += 1
                if mutant in excused:
                    tally["stale"] += 1
                    print(f"  note: {mutant} is listed in docs/mutation.md but was killed")
            elif mutant in excused:
                tally["excused"] += 1
            else:
                tally["survived" if code in SURVIVED else "no tests" if code in NO_TESTS else "other"] += 1
                undocumented.append(mutant)
        judged = len(codes) - tally["excused"]
        rate = 100.0 * tally["killed"] / judged if judged else 100.0
        ok &= rate >= minimum
        print(f"  {module:34} {len(codes):7} {tally['killed']:6} {tally['survived']:8} {tally['no tests']:8} "
              f"{tally['excused']:7} {rate:5.1f}%")
    return ok, undocumented


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", action="append", choices=sorted(TARGETS), help="default: all")
    parser.add_argument("--resume", action="store_true", help="keep earlier results; run only unchecked mutants")
    parser.add_argument("--report-only", action="store_true", help="print the figures of the last run")
    parser.add_argument("--children", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--min", type=float, default=90.0, help="lowest acceptable kill rate per module, %%")
    args = parser.parse_args()

    excused = documented()
    ok = True
    survivors: list[str] = []
    for name in args.target or list(TARGETS):
        folder = TARGETS[name]
        if not args.report_only:
            took = run_mutmut(folder, args.children, args.resume)
            print(f"{name}: mutmut took {took / 60:.1f} min")
        target_ok, left = report(name, folder, excused, args.min)
        ok &= target_ok
        survivors += left
    if survivors:
        print(f"\n{len(survivors)} surviving mutants are neither killed nor listed in docs/mutation.md "
              "(`mutmut show NAME` in the target's folder shows one):")
        for mutant in survivors:
            print(f"  {mutant}")
    print(f"\nkill rate per module {'meets' if ok else 'is below'} the {args.min:g} % target")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
