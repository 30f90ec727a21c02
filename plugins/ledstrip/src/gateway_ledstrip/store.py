"""What a strip keeps in its data dir: the light it shows and the slots its effects hold."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

FILE = "ledstrip.json"


def load(folder: Path, log: logging.Logger) -> dict[str, Any]:
    """``{"light": {...} | None, "effects": {...}}``; a missing or damaged file gives an empty record."""
    path = folder / FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"light": None, "effects": {}}
    except (OSError, ValueError) as exc:
        log.warning("cannot read %s (%s): starting without the saved light and effect slots", path, exc)
        return {"light": None, "effects": {}}
    if not isinstance(data, dict):
        log.warning("%s does not hold a JSON object: starting without it", path)
        return {"light": None, "effects": {}}
    effects = data.get("effects")
    return {"light": data.get("light"), "effects": effects if isinstance(effects, dict) else {}}


def save(folder: Path, data: dict[str, Any]) -> None:
    """Write ``data`` so that a crash leaves the old file or the new one, never half of one."""
    path = folder / FILE
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
