"""Request checks that hold for every URL, written once; and the page-only middleware the token API skips."""

from __future__ import annotations

from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as messages
from django.core.exceptions import BadRequest

# The API that authenticates with project tokens (deliveries.api_auth) and answers JSON: Jenkins' callbacks and
# hooks. The signed-in user, the sign-in requirement and messages are for people's pages (the promotion decision
# under /api/v1/promotions/ is one: it takes a session); on a callback the sign-in requirement loaded the session to
# find no user, about 3% of its CPU. tests/portal/test_middleware.py checks that every view under these paths
# authenticates without a session. Sessions and CSRF stay in the chain under Django's own names (the deploy checks
# look for them there); they cost a callback little once nothing reads its session.
TOKEN_API_PATHS = ("/api/v1/projects/", "/api/v1/hooks/")


def is_token_api(request) -> bool:
    return request.path_info.startswith(TOKEN_API_PATHS)


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


class PagesOnly:
    """Mixed into a middleware that only pages need: a token API request goes straight past it."""

    def __call__(self, request):
        if is_token_api(request):
            return self.get_response(request)
        return super().__call__(request)


class AuthenticationMiddleware(PagesOnly, auth.AuthenticationMiddleware):
    pass


class LoginRequiredMiddleware(auth.LoginRequiredMiddleware):
    def process_view(self, request, view_func, view_args, view_kwargs):
        if is_token_api(request):  # no request.user there: the view authenticates the token itself
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)


class MessageMiddleware(PagesOnly, messages.MessageMiddleware):
    pass
