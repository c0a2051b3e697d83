"""The decision through the API: `POST /api/v1/promotions/<id>/approve/` (or `reject/`), for a signed-in tech
lead's session (with its CSRF token), not for project tokens: Jenkins never decides. The same service as the
page decides, so the same rules hold: the requester gets 403 and nothing changes.

Jenkins' deploy permission, `GET /api/v1/projects/<slug>/deploy-permission/`, takes the project token: it only
reads, with the rule the deployment callbacks are flagged by (promotions.selectors.deploy_refusal)."""

from django.contrib.auth.decorators import login_not_required
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from deliveries.api import project_of
from deliveries.api_auth import ProjectTokenAuthentication
from deliveries.models import Promotion
from deliveries.serializers import iso
from environments.models import Environment
from promotions import selectors, services


class DecisionIn(serializers.Serializer):
    comment = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


def promotion_payload(promotion: Promotion) -> dict:
    return {
        "id": promotion.pk,
        "state": promotion.state,
        "requested_by": promotion.requested_by.get_username(),
        "approved_by": promotion.approved_by.get_username() if promotion.approved_by else None,
        "decision_comment": promotion.decision_comment,
        "mr_url": promotion.mr_url,
    }


PROMOTION_OUT = inline_serializer("PromotionOut", {
    "id": serializers.IntegerField(), "state": serializers.CharField(), "requested_by": serializers.CharField(),
    "approved_by": serializers.CharField(allow_null=True), "decision_comment": serializers.CharField(),
    "mr_url": serializers.CharField(),
})


class DecisionView(APIView):
    authentication_classes = [SessionAuthentication]  # a person's session; CSRF enforced
    throttle_classes = []  # the limit counts project tokens
    decision = "approve"

    @extend_schema(
        request=DecisionIn,
        responses={
            200: PROMOTION_OUT,
            400: OpenApiResponse(description="Invalid input, or a rejection without a comment"),
            403: OpenApiResponse(description="Not signed in, not a tech lead, or the requester of this promotion"),
            404: OpenApiResponse(description="No such promotion"),
            409: OpenApiResponse(description="Not waiting for a decision, or the quality gate fails"),
        },
    )
    def post(self, request, promotion_id):
        promotion = Promotion.objects.select_related("project", "requested_by").filter(pk=promotion_id).first()
        if promotion is None:
            raise NotFound("No such promotion.")
        data = DecisionIn(data=request.data)
        data.is_valid(raise_exception=True)
        decide = services.approve_promotion if self.decision == "approve" else services.reject_promotion
        try:
            promotion = decide(promotion=promotion, user=request.user, comment=data.validated_data["comment"])
        except services.PromotionRefused as exc:
            if exc.forbidden:
                raise PermissionDenied(exc.reason) from None
            code = status.HTTP_400_BAD_REQUEST if exc.invalid else status.HTTP_409_CONFLICT
            return Response({"detail": exc.reason}, status=code)
        promotion = Promotion.objects.select_related("requested_by", "approved_by").get(pk=promotion.pk)
        return Response(promotion_payload(promotion))


def decision_view(decision: str):
    # Signed-in people only; the middleware's login redirect would answer an API client with a page, so DRF's
    # IsAuthenticated answers 403 instead.
    return login_not_required(DecisionView.as_view(decision=decision))


# --- Jenkins' deploy permission ---------------------------------------------------------------------------------

class DeployPermissionIn(serializers.Serializer):
    environment = serializers.SlugField(max_length=100)
    commit = serializers.RegexField(
        r"^([0-9a-fA-F]{40}|[0-9a-fA-F]{64})$", max_length=64,
        error_messages={"invalid": "A full commit sha (40 or 64 hex digits): the permission is for exactly one "
                                   "commit."},
    )


DEPLOY_PERMISSION_OUT = inline_serializer("DeployPermissionOut", {
    "allowed": serializers.BooleanField(), "environment": serializers.CharField(), "commit": serializers.CharField(),
    "promotion": inline_serializer("ApprovedPromotionOut", {
        "id": serializers.IntegerField(), "state": serializers.CharField(),
        "source_run": serializers.IntegerField(help_text="The dev run's build number"),
        "approved_by": serializers.CharField(), "approved_at": serializers.DateTimeField(),
        "tested_sha": serializers.CharField(), "merge_commit_sha": serializers.CharField(),
        "url": serializers.CharField(),
    }, allow_null=True),
})


def approved_payload(promotion: Promotion | None, request) -> dict | None:
    if promotion is None:
        return None
    return {
        "id": promotion.pk,
        "state": promotion.state,
        "source_run": promotion.source_run.build_number,
        "approved_by": promotion.approved_by.get_username() if promotion.approved_by else None,
        "approved_at": iso(promotion.decided_at),
        "tested_sha": promotion.source_run.commit_sha,
        "merge_commit_sha": promotion.merge_commit_sha,
        "url": request.build_absolute_uri(promotion.get_absolute_url()),
    }


class DeployPermissionView(APIView):
    authentication_classes = [ProjectTokenAuthentication]

    @extend_schema(
        operation_id="deploy_permission",
        summary="May this commit be deployed to this environment now?",
        description="Jenkins asks before it deploys production (the shared library's `portalGate`). 200 when a "
                    "promotion approved for exactly that commit (the tested one, or the merge commit GitLab made "
                    "from it; approved, merging, merged or released) exists and no freeze window is in force; "
                    "an environment that needs no approval only has to be out of a freeze.",
        parameters=[
            OpenApiParameter("slug", str, OpenApiParameter.PATH, description="The project's slug"),
            OpenApiParameter("environment", str, required=True, description="The environment's slug"),
            OpenApiParameter("commit", str, required=True, description="The full commit sha to deploy"),
        ],
        responses={
            200: DEPLOY_PERMISSION_OUT,
            400: OpenApiResponse(description="A missing or malformed parameter, or an unknown environment"),
            401: OpenApiResponse(description="Missing, invalid or revoked token"),
            403: OpenApiResponse(description="Refused: `detail` says why (no approved promotion, a freeze)"),
            404: OpenApiResponse(description="No such project for this token"),
        },
    )
    def get(self, request, slug):
        project = project_of(request, slug)
        data = DeployPermissionIn(data=request.query_params)
        data.is_valid(raise_exception=True)
        environment = Environment.objects.filter(slug=data.validated_data["environment"]).first()
        if environment is None:
            raise ValidationError({"environment": ["No such environment."]})
        commit = data.validated_data["commit"].lower()
        promotion, refusal = selectors.deploy_refusal(project=project, environment=environment, commit_sha=commit)
        if refusal:
            return Response({"detail": refusal, "allowed": False}, status=status.HTTP_403_FORBIDDEN)
        return Response({"allowed": True, "environment": environment.slug, "commit": commit,
                         "promotion": approved_payload(promotion, request)})


deploy_permission_view = login_not_required(DeployPermissionView.as_view())
