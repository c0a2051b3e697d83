from django.conf import settings

from deliveries import jenkins as jenkins_client
from portal.roles import Role, roles_of


def roles(request):
    user_roles = roles_of(request.user) if hasattr(request, "user") else set()
    return {
        "user_roles": user_roles,
        "is_developer": Role.DEVELOPER in user_roles,
        "is_techlead": Role.TECHLEAD in user_roles,
        "is_operator": Role.OPERATOR in user_roles,
    }


def jenkins(request):
    """Every page says when Jenkins (or GitLab) is the demo's imitation, and forms know whether Jenkins is
    configured."""
    return {"jenkins_configured": jenkins_client.is_configured(), "jenkins_simulated": settings.JENKINS_SIMULATED,
            "gitlab_simulated": settings.GITLAB_SIMULATED}
