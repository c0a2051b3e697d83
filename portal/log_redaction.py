"""API tokens never reach a log.

The Jenkins Notification plugin can only send its token in the URL (`?token=`), and web servers log URLs: the
request line of runserver's `django.server` records and of gunicorn's access log. This filter rewrites any
record whose message holds a token, wherever it comes from: the value of a `token` query parameter, and any
project token (`dp_<prefix>_<secret>`) in the clear. A project token keeps its non-secret prefix, so an
operator can still tell which token called.
"""

from __future__ import annotations

import logging
import re

REDACTED = "***"
# `token=` as a query parameter (after ?, & or ;), its value up to the next separator.
QUERY_TOKEN = re.compile(r"(?i)(?<=[?&;])(token=)([^&;#\s\"']*)")
# A project token anywhere: dp_<8 hex>_<secret>.
PROJECT_TOKEN = re.compile(r"\b(dp_[0-9a-fA-F]{8}_)[A-Za-z0-9_\-]+")


def redact_tokens(text: str) -> str:
    if "token=" not in text.lower() and "dp_" not in text:
        return text  # the common case, kept cheap: every access log line passes here
    text = QUERY_TOKEN.sub(lambda match: match.group(1) + redact_value(match.group(2)), text)
    return PROJECT_TOKEN.sub(lambda match: match.group(1) + REDACTED, text)


def redact_value(value: str) -> str:
    project_token = PROJECT_TOKEN.match(value)
    return project_token.group(1) + REDACTED if project_token else REDACTED


class RedactTokens(logging.Filter):
    """A logging filter (on handlers, so that it sees every record they write) that redacts tokens in the
    formatted message and drops the arguments it was formatted from."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record: the handler reports it, as it would have
            return True
        redacted = redact_tokens(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True
