"""``housebus decode``: what the gateway would publish for a raw frame or line, without running it."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from typing import Any, ClassVar

import pluggy
from pydantic import BaseModel


class Decoder:
    """Base class of an offline decoder offered by a plugin (hook ``gateway_register_decoders``).

    Attributes:
        name: the word after ``housebus decode``.
        help: one line for ``housebus decode --help``.
        section: the config section whose validated model is passed in, when the config has it.

    Args:
        config: that section's validated model, or None.
        base_topic: the base topic from the config (default ``housebus``).
        args: the parsed command line, with the decoder's own options.
        hook: the plugin manager's hook relay, for hooks plugins define (e.g. extra node decoders).
    """

    name: ClassVar[str]
    help: ClassVar[str] = ""
    section: ClassVar[str | None] = None

    def __init__(self, config: BaseModel | None, base_topic: str, args: argparse.Namespace,
                 hook: pluggy.HookRelay | None = None) -> None:
        self.config = config
        self.base_topic = base_topic
        self.args = args
        self.hook = hook

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add options of the decoder's own (inputs are added by the core)."""

    def decode(self, text: str) -> dict[str, Any]:
        """One input -> ``{"topic": ..., "payload": {...}}``, or a dict with an ``error`` key."""
        raise NotImplementedError


def inputs(values: list[str]) -> Iterable[str]:
    """The inputs given, with ``-`` meaning one input per line of standard input."""
    for value in values:
        if value == "-":
            for line in sys.stdin:
                if line.strip():
                    yield line.rstrip("\r\n")
        else:
            yield value


def run(decoder: Decoder, values: list[str]) -> int:
    """Print one JSON line per input; returns 1 if any input failed to decode."""
    failed = False
    for text in inputs(values):
        try:
            result = decoder.decode(text)
        except Exception as exc:  # a decoder bug must not hide the other inputs' results
            result = {"input": text, "error": f"{type(exc).__name__}: {exc}"}
        failed = failed or "error" in result
        print(json.dumps(result, ensure_ascii=False), flush=True)
    return 1 if failed else 0
