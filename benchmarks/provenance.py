"""Shared by the benchmark scripts: stamp a result with date, machine and command, save it."""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path


def stamp(result: dict) -> dict:
    """Date, machine and command; a result that already names its command (one updated in
    place, which lists its updates) keeps it."""
    return {**result, "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "command": result.get("command") or "python " + " ".join(sys.argv)}


def save(path: Path | None, result: dict) -> dict:
    """Stamp ``result``; write it as JSON to ``path`` when given. Returns the stamped result."""
    result = stamp(result)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=1))
    return result
