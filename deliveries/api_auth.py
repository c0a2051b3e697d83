"""Bearer project tokens for the REST API (Jenkins callbacks)."""

from django.utils import timezone
from rest_framework import authentication, exceptions

from deliveries.models import ProjectToken
from deliveries.services import verified_token


class TokenUser:
    """Who calls the API: a project token. Behaves enough like a user for DRF's permission checks."""

    is_authenticated = True
    is_active = True
    is_anonymous = False

    def __init__(self, token: ProjectToken):
        self.token = token
        self.project = token.project

    def __str__(self):
        return f"token dp_{self.token.prefix} of {self.project.slug}"


class ProjectTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        # META, not DRF's get_authorization_header: that builds request.headers, every header, on each call.
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        keyword, _, token = header.partition(" ")
        if keyword.lower() != self.keyword.lower() or not token.strip():
            raise exceptions.AuthenticationFailed("Use an Authorization: Bearer <project token> header.")
        return self.authenticate_token(token.strip())

    def authenticate_token(self, token: str):
        row = verified_token(token)
        if row is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked project token.")
        # Touch last_used_at at most once a minute: it is shown in the admin, not worth a write per call.
        now = timezone.now()
        if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
            ProjectToken.objects.filter(pk=row.pk).update(last_used_at=now)
            row.last_used_at = now  # the row may be the cached one
        return TokenUser(row), row

    def authenticate_header(self, request):
        return self.keyword
