"""API rate limits per project token (DRF throttling: 429 with Retry-After).

DRF's own SimpleRateThrottle keeps the time of every request of the window in one cache entry, and reads and
rewrites that whole list on each request: at the rate a Jenkins farm needs (thousands a minute) that is a list
of thousands of floats pickled per callback. This one counts requests in fixed windows instead: one atomic
increment per request (Redis' INCR with REDIS_URL; a per-process counter with the local-memory cache).
"""

from __future__ import annotations

import time

from rest_framework.throttling import SimpleRateThrottle


class ProjectTokenRateThrottle(SimpleRateThrottle):
    """At most REST_FRAMEWORK's DEFAULT_THROTTLE_RATES["project_token"] requests per token and period; requests
    without a token (the schema, the docs) are not counted here."""

    scope = "project_token"

    def get_cache_key(self, request, view):
        token = request.auth
        if token is None:
            return None
        # The token's prefix: not secret, unique, and never reused by another token (its row id may be, on SQLite).
        ident = getattr(token, "prefix", None) or token.pk
        return self.cache_format % {"scope": self.scope, "ident": ident}

    def allow_request(self, request, view):
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        now = time.time()
        window = int(now // self.duration)
        self.wait_seconds = (window + 1) * self.duration - now
        window_key = f"{key}_{window}"
        try:
            count = self.cache.incr(window_key)
        except ValueError:  # the window's first request (or its entry expired)
            if self.cache.add(window_key, 1, self.duration + 1):
                return True
            count = self.cache.incr(window_key)  # another process added it first
        return count <= self.num_requests

    def wait(self):
        return self.wait_seconds
