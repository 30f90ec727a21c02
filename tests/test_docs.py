"""Meta-tests: every hook is documented under its exact signature and exercised by a test."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from gateway import hookspecs

ROOT = Path(__file__).resolve().parent.parent
HOOKS = sorted(name for name in dir(hookspecs) if name.startswith("gateway_"))


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented_with_its_exact_signature(hook):
    params = ", ".join(inspect.signature(getattr(hookspecs, hook)).parameters)
    docs = (ROOT / "docs" / "plugin_hooks.md").read_text()
    assert f"\n## {hook}({params})\n" in docs


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_used_by_a_test(hook):
    tests = [p for p in ROOT.glob("tests/**/*.py") if p.name != "test_docs.py"]
    plugins = list(ROOT.glob("tests/plugins/*/src/**/*.py"))
    assert any(hook in p.read_text() for p in tests + plugins)


def test_readme_commands_exist():
    readme = (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    for target in ("demo", "test"):
        assert f"make {target}" in readme
        assert f"\n{target}:" in makefile
    assert "make test" in (ROOT / ".ci" / "run").read_text()
