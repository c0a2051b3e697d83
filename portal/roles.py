"""Roles of the portal's users, as Django groups, and the checks views make with them.

Three groups (created by a data migration): developers trigger runs and request promotions,
tech leads approve and merge, operators run environments. A signed-in user in none of them
sees nothing: views check roles themselves, templates only hide what a user cannot do.
"""

from enum import StrEnum
from functools import wraps

from django.core.exceptions import PermissionDenied


class Role(StrEnum):
    DEVELOPER = "developer"
    TECHLEAD = "techlead"
    OPERATOR = "operator"


ANY_ROLE = tuple(Role)


def roles_of(user) -> set[str]:
    # Only people hold roles: not anonymous visitors, nor the API's token "users" (which have no groups).
    if user is None or not user.is_authenticated or not user.is_active or not hasattr(user, "groups"):
        return set()
    if user.is_superuser:
        return set(ANY_ROLE)
    cached = getattr(user, "_portal_roles", None)
    if cached is None:
        cached = set(user.groups.filter(name__in=list(ANY_ROLE)).values_list("name", flat=True))
        user._portal_roles = cached
    return cached


def has_role(user, *roles: str) -> bool:
    return bool(roles_of(user) & set(roles or ANY_ROLE))


def role_required(*roles: str):
    """Refuse with 403 unless the user holds one of the roles (any role when none is named)."""

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if not has_role(request.user, *roles):
                raise PermissionDenied("Your account has no role that allows this.")
            return view(request, *args, **kwargs)

        return wrapper

    return decorator
