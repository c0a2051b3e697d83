"""The secrets the demo's imitations are given (project tokens, webhook secrets), kept in a private JSON file under
var/ so that restarting the demo reuses them rather than issuing new ones each time."""

from __future__ import annotations

import json
import os
from pathlib import Path


def read(path: Path) -> dict[str, str]:
    """What the file holds; nothing when it is missing or unreadable (the caller issues new secrets)."""
    if not path.exists():
        return {}
    try:
        kept = json.loads(path.read_text())
    except ValueError:
        return {}
    return kept if isinstance(kept, dict) else {}


def write(path: Path, secrets: dict[str, str]) -> None:
    """Write the file readable by its owner only (0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump(secrets, file)
    os.chmod(path, 0o600)  # also when the file existed with looser permissions
