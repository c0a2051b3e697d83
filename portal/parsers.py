"""The API's JSON parser: DRF's, refusing with a 400 what would otherwise fail further in (a 500).

- A body nested deeper than MAX_JSON_DEPTH: Python's JSON decoder raises RecursionError at about 1,000
  levels, and anything that walks a deep value afterwards may too. No payload the portal takes (Jenkins',
  GitLab's) nests more than a handful of levels.
- A NUL character in any string or key: PostgreSQL refuses it in text. One rule for every JSON field of the
  API, hooks included, naming the field (`build.scm.branch`).
"""

from __future__ import annotations

from rest_framework import parsers
from rest_framework.exceptions import ParseError

from portal.inputs import has_nul

MAX_JSON_DEPTH = 64


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(too_deep()) from None
        problem = json_problem(data)
        if problem:
            raise ParseError(problem)
        return data


def too_deep() -> dict:
    return {"body": [f"JSON nested deeper than {MAX_JSON_DEPTH} levels."]}


def json_problem(data) -> dict | None:
    """{field: [message]} for the first value nested too deep or text holding NUL, else None. Iterative, so
    that it cannot itself run out of stack."""
    pending = [(data, "", 1)]
    while pending:
        value, path, depth = pending.pop()
        if depth > MAX_JSON_DEPTH:
            return too_deep()
        if isinstance(value, str):
            if has_nul(value):
                return {path or "body": ["NUL characters are not allowed."]}
        elif isinstance(value, dict):
            for key, item in value.items():
                where = f"{path}.{key}" if path else key
                if has_nul(key):
                    return {(path or "body"): [f"NUL characters are not allowed (in the key {key!r})."]}
                pending.append((item, where, depth + 1))
        elif isinstance(value, list):
            pending.extend((item, f"{path}.{index}" if path else str(index), depth + 1)
                           for index, item in enumerate(value))
    return None
