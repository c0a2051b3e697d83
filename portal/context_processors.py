from portal.roles import Role, roles_of


def roles(request):
    user_roles = roles_of(request.user) if hasattr(request, "user") else set()
    return {
        "user_roles": user_roles,
        "is_developer": Role.DEVELOPER in user_roles,
        "is_techlead": Role.TECHLEAD in user_roles,
        "is_operator": Role.OPERATOR in user_roles,
    }
