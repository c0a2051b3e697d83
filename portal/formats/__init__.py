"""The portal writes every moment one way, with its time zone: "2026-11-27 08:15 UTC".

The format itself is Django's DATETIME_FORMAT in en/formats.py (FORMAT_MODULE_PATH), so the admin and any bare
{{ datetime }} follow it; `moment()` is how pages (the `when` filter) and object names write one.
"""

from datetime import datetime

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.formats import date_format


def moment(value: datetime | str | None) -> str:
    """A moment in the portal's time zone (TIME_ZONE), "—" when unknown; takes the ISO strings report summaries
    keep, too."""
    if isinstance(value, str):
        value = parse_datetime(value)
    if not isinstance(value, datetime):
        return "—"
    return date_format(timezone.localtime(value) if timezone.is_aware(value) else value, "DATETIME_FORMAT")
