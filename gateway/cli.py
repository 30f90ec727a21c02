"""The ``housebus`` command: run, check-config, plugins, demo."""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from gateway import __version__
from gateway.config import DEFAULT_PATH, Config, load
from gateway.decode import Decoder
from gateway.errors import ConfigError
from gateway.plugins import PluginSet, call_each, load_plugins

EXIT_CONFIG = 2


class OneLineFormatter(logging.Formatter):
    """One event, one line: a traceback is folded onto the line it belongs to."""

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).replace("\n", " | ")


class JournalFormatter(OneLineFormatter):
    """For stderr connected to journald: no timestamp (journald adds its own), and the syslog
    priority as a ``<N>`` prefix, which journald takes off and keeps (``journalctl -p warning``)."""

    PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))

    def format(self, record: logging.LogRecord) -> str:
        priority = next((p for level, p in self.PRIORITIES if record.levelno >= level), 7)
        return f"<{priority}>{super().format(record)}"


def stderr_is_journal() -> bool:
    """True if stderr goes to journald: ``JOURNAL_STREAM`` names its device and inode.

    Checked rather than merely present, as systemd.exec(5) asks: a process started by the
    service with its stderr redirected inherits the variable.
    """
    expected = os.environ.get("JOURNAL_STREAM", "")
    if not expected:
        return False
    try:
        stat = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):  # no stderr, or one without a descriptor
        return False
    return expected == f"{stat.st_dev}:{stat.st_ino}"


def setup_logging(level: int | str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if stderr_is_journal():
        handler.setFormatter(JournalFormatter("%(levelname)s %(name)s: %(message)s"))
    else:
        handler.setFormatter(OneLineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)  # third-party libraries stay quiet
    logging.getLogger("housebus").setLevel(level)


def _load_config(path: Path, plugins: PluginSet) -> Config | None:
    try:
        return load(path, plugins.models(), plugins.unavailable())
    except ConfigError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        return None


def cmd_check_config(args: argparse.Namespace) -> int:
    setup_logging(logging.WARNING)
    plugins = load_plugins()
    config = _load_config(args.config, plugins)
    if config is None:
        return EXIT_CONFIG
    for section, reason in config.skipped.items():
        print(f"{args.config}: [{section}] skipped: {reason}", file=sys.stderr)
    print("config OK")
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    plugins = load_plugins()
    configured: set[str] | None = None
    if args.config.exists():
        config = _load_config(args.config, plugins)
        configured = set(config.sections) if config else None
    records = [*plugins.loaded, *plugins.failed]
    if args.json:
        out = []
        for record in records:
            entry = record.as_dict()
            if configured is not None and record.error is None:
                entry["configured"] = sorted(set(record.sections) & configured)
            out.append(entry)
        print(json.dumps(out, indent=2))
        return 0
    if not records:
        print("no plugins installed")
        return 0
    rows = [("NAME", "DISTRIBUTION", "VERSION", "SECTIONS")]
    for record in records:
        if record.error is not None:
            sections = f"FAILED: {record.error}"
        else:
            sections = " ".join(
                f"[{s}]" + ("" if configured is None else (" configured" if s in configured else " idle"))
                for s in record.sections
            ) or "-"
        rows.append((record.name, record.distribution or "-", record.version or "-", sections))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row[:3], widths, strict=True)) + "  " + row[3])
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from gateway.app import Gateway

    setup_logging(logging.DEBUG if args.verbose else logging.INFO)
    plugins = load_plugins()
    config = _load_config(args.config, plugins)
    if config is None:
        return EXIT_CONFIG
    if not args.verbose:
        logging.getLogger("housebus").setLevel(config.settings.logging.level)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    gateway = Gateway(config, plugins)
    gateway.start()
    try:
        while not stop.wait(3600):
            pass
    finally:
        gateway.stop()
    return 0


@functools.cache  # the parser and the command both need them; load the plugins once
def _decoders() -> tuple[PluginSet, dict[str, type[Decoder]]]:
    plugins = load_plugins()
    found: dict[str, type[Decoder]] = {}
    for _, classes in call_each(plugins.pm, "gateway_register_decoders", {r.name: r for r in plugins.loaded}):
        for cls in classes or ():
            if isinstance(cls, type) and issubclass(cls, Decoder) and isinstance(getattr(cls, "name", None), str):
                found.setdefault(cls.name, cls)
    return plugins, found


def cmd_decode(args: argparse.Namespace) -> int:
    from gateway import decode

    setup_logging(logging.WARNING)
    plugins, decoders = _decoders()
    cls = decoders[args.decoder]
    section = None
    base_topic = "housebus"
    if args.config.exists():
        config = _load_config(args.config, plugins)
        if config is None:
            return EXIT_CONFIG
        base_topic = config.settings.mqtt.base_topic
        section = config.sections.get(cls.section) if cls.section else None
    return decode.run(cls(section, base_topic, args, hook=plugins.pm.hook), args.inputs)


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.demo import run_demo

    setup_logging(logging.DEBUG if args.verbose else logging.WARNING)
    return run_demo(args)


def _wants_decode(argv: Sequence[str] | None) -> bool:
    """Only ``housebus decode`` pays for asking the plugins for their decoders."""
    args = sys.argv[1:] if argv is None else argv
    return "decode" in args


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="housebus",
        description="Home-automation gateway: radio drivers as plugins, joined through MQTT.",
    )
    parser.add_argument("--version", action="version", version=f"housebus {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.add_argument("--config", "-c", type=Path, default=DEFAULT_PATH, metavar="PATH",
                         help=f"config file (default: ./{DEFAULT_PATH})")
        return sub

    run = command("run", "run the gateway until SIGTERM or Ctrl-C")
    run.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    run.set_defaults(func=cmd_run)

    check = command("check-config", "validate the config file: print 'config OK' or every problem (exit 2)")
    check.set_defaults(func=cmd_check_config)

    plugins = command("plugins", "list installed plugins, their versions and config sections")
    plugins.add_argument("--json", action="store_true", help="print JSON")
    plugins.set_defaults(func=cmd_plugins)

    what = "print what the gateway would publish for raw frames or lines"
    decode = commands.add_parser("decode", help=what, description=what + "; decoders come from plugins")
    decoders = decode.add_subparsers(dest="decoder", metavar="DECODER", required=True)
    for name, cls in sorted(_decoders()[1].items()) if _wants_decode(argv) else ():
        sub = decoders.add_parser(name, help=cls.help, description=cls.help)
        sub.add_argument("--config", "-c", type=Path, default=DEFAULT_PATH, metavar="PATH",
                         help="config file, for device names and the base topic (used if it exists)")
        cls.add_arguments(sub)
        sub.add_argument("inputs", nargs="+", metavar="INPUT", help="raw input; '-' reads one per line from stdin")
        sub.set_defaults(func=cmd_decode)

    demo = commands.add_parser(
        "demo",
        help="run a broker, simulated devices and the gateway, printing the MQTT traffic",
        description="Start Mosquitto from mosquitto/ on a free port, every installed plugin's "
        "simulated devices and the gateway, and print each MQTT message until Ctrl-C.",
    )
    demo.add_argument("--mosquitto-dir", type=Path, default=None, metavar="DIR",
                      help="broker config to use (default: the repository's mosquitto/)")
    demo.add_argument("--duration", type=float, default=None, metavar="SECONDS",
                      help="stop after this long instead of waiting for Ctrl-C")
    demo.add_argument("-v", "--verbose", action="store_true", help="show the gateway's debug log")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser(argv).parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
