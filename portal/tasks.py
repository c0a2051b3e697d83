"""Portal-wide background tasks."""

import platform

from django.db import connection
from django.utils import timezone


def diagnostic_ping(note: str = "") -> dict:
    """Proves a worker picks up queued tasks: its result shows in the admin under Successful tasks."""
    return {
        "note": note,
        "worker_host": platform.node(),
        "database": connection.vendor,
        "finished_at": timezone.now().isoformat(),
    }
