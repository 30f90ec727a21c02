"""housebus as a plugin author gets it: built wheels in a fresh virtualenv, no checkout in sight."""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "tests" / "plugins" / "housebus-example"

pytestmark = pytest.mark.broker


def run(*args: str | Path, cwd: Path | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def test_wheels_ship_the_broker_config_and_the_fixtures_work_without_a_checkout(tmp_path):
    wheels = tmp_path / "wheels"
    # No build isolation: hatchling comes with the test extra, so no index is needed to build.
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", wheels,
        ROOT, EXAMPLE)
    env = tmp_path / "venv"
    venv.create(env, with_pip=True)
    python = env / "bin" / "python"
    run(python, "-m", "pip", "install", "--quiet", *sorted(wheels.glob("*.whl")), "pytest>=8")

    # The example plugin's own tests, run from a folder that holds nothing else of ours.
    work = tmp_path / "author"
    shutil.copytree(EXAMPLE / "tests", work / "tests")
    where = run(python, "-c", "import gateway, gateway.broker as b; print(gateway.__file__); "
                "print(b.shipped_config_dir())", cwd=work).stdout.split()
    site = str(env)
    assert where[0].startswith(site) and where[1].startswith(site), where  # the wheel's copy, not the checkout
    # --strict-markers, as a plugin author may well have it: the fixtures' plugin registers its marker.
    result = run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--strict-markers", "tests", cwd=work,
                 timeout=120)
    assert " passed" in result.stdout and "failed" not in result.stdout, result.stdout
