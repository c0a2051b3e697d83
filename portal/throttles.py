"""API rate limits per project token, and of refused tokens per address (DRF throttling: 429 with Retry-After).

DRF's own SimpleRateThrottle keeps the time of every request of the window in one cache entry, and reads and
rewrites that whole list on each request: at the rate a Jenkins farm needs (thousands a minute) that is a list
of thousands of floats pickled per callback. This one counts requests in fixed windows instead: one atomic
increment per request (Redis' INCR with REDIS_URL; a per-process counter with the local-memory cache).
"""

from __future__ import annotations

import time

from rest_framework.throttling import SimpleRateThrottle


class FixedWindowThrottle(SimpleRateThrottle):
    """Counts in fixed windows of the rate's period: one atomic increment per counted request."""

    def window_key(self, key: str) -> str:
        now = time.time()
        window = int(now // self.duration)
        self.wait_seconds = (window + 1) * self.duration - now
        return f"{key}_{window}"

    def count_one(self, window_key: str) -> int:
        """Adds one to the window's count; returns the new count."""
        try:
            return self.cache.incr(window_key)
        except ValueError:  # the window's first request (or its entry expired)
            if self.cache.add(window_key, 1, self.duration + 1):
                return 1
            return self.cache.incr(window_key)  # another process added it first

    def wait(self):
        return self.wait_seconds


class ProjectTokenRateThrottle(FixedWindowThrottle):
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
        return self.count_one(self.window_key(key)) <= self.num_requests


class FailedAuthenticationThrottle(FixedWindowThrottle):
    """At most DEFAULT_THROTTLE_RATES["failed_authentication"] refused tokens (401) per client address and
    period; past it, every request from that address is 429 before its token is even looked at, so that a
    right guess cannot be told from a wrong one. Only failures count: a Jenkins with a good token is never
    slowed. The address is the one the portal sees (REMOTE_ADDR): behind a proxy, the proxy's."""

    scope = "failed_authentication"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": request.META.get("REMOTE_ADDR", "")}

    def allow_request(self, request, view):
        if self.rate is None:
            return True
        return self.cache.get(self.window_key(self.get_cache_key(request, view)), 0) < self.num_requests

    def record_failure(self, request, view) -> None:
        if self.rate is not None:
            self.count_one(self.window_key(self.get_cache_key(request, view)))


class LimitFailedAuthentication:
    """An APIView mixin for the endpoints that take a secret where anyone can try one (the hooks): refuses an
    address over FailedAuthenticationThrottle's rate with 429 and Retry-After, and counts each 401 it answers."""

    def initial(self, request, *args, **kwargs):
        throttle = FailedAuthenticationThrottle()
        if not throttle.allow_request(request, self):
            self.throttled(request, throttle.wait())
        super().initial(request, *args, **kwargs)

    def finalize_response(self, request, response, *args, **kwargs):
        if response.status_code == 401:
            FailedAuthenticationThrottle().record_failure(request, self)
        return super().finalize_response(request, response, *args, **kwargs)
