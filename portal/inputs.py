"""What the portal accepts from a client, written once: the API's serializers and parsers, the hooks and the
pages' query strings all read numbers, moments and durations through these.

- Numbers are ASCII digits only. Python's `int()` and `str.isdigit()` also take other scripts' digits ("٣" is
  3) and `isdigit()` takes superscripts ("²"), which `int()` then refuses: a build number must be what it looks
  like, and nothing a client sends may reach `int()` unchecked.
- Moments lie between 1970 and 2999, durations under ten years: anything else is a client's mistake, and
  further arithmetic (start + duration) must not overflow Python's datetime (year 9999).
- Text holds no NUL character: PostgreSQL refuses it in text columns (and in query parameters).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

ASCII_DIGITS = re.compile(r"[0-9]+")  # fullmatch, so no trailing newline slips through as `$` would allow
ASCII_NUMBER = re.compile(r"\s*[-+]?[0-9]+(\.[0-9]*)?\s*")

EARLIEST_MOMENT = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_MOMENT = datetime(3000, 1, 1, tzinfo=UTC)
LONGEST_DURATION_MS = 10 * 366 * 24 * 3600 * 1000
MOMENT_RANGE = "between 1970 and 2999"
DURATION_RANGE = f"between 0 and {LONGEST_DURATION_MS} milliseconds (ten years)"


def ascii_int(value) -> int | None:
    """An int as it is, or the number a string of ASCII digits spells (surrounding spaces allowed), else None.
    Booleans are not numbers."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and ASCII_DIGITS.fullmatch(value.strip()):
        return int(value.strip())
    return None


def is_ascii_number(text: str) -> bool:
    """Whether a string holds an optionally signed ASCII integer or decimal (what a number field may be given
    as text)."""
    return ASCII_NUMBER.fullmatch(text) is not None


def moment_in_range(moment: datetime) -> bool:
    return EARLIEST_MOMENT <= moment < LATEST_MOMENT


def duration_in_range(milliseconds: int) -> bool:
    return 0 <= milliseconds <= LONGEST_DURATION_MS


def has_nul(text: str) -> bool:
    return "\x00" in text
