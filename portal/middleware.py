"""Request checks that hold for every URL, written once."""

from __future__ import annotations

from django.core.exceptions import BadRequest


def refuse_nul_in_query_string(get_response):
    """A NUL character in the query string (`%00`) is a 400 (JSON under /api/, the 400 page elsewhere):
    PostgreSQL refuses NUL in text, so a search box, a filter or `?token=` holding one would be a 500 on the
    first query that used it. Checked on the raw string, before anything parses it: a few nanoseconds."""

    def middleware(request):
        query = request.META.get("QUERY_STRING", "")
        if "%00" in query or "\x00" in query:
            raise BadRequest("NUL characters are not allowed in the query string.")
        return get_response(request)

    return middleware
