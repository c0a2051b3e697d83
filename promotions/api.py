"""The decision through the API: `POST /api/v1/promotions/<id>/approve/` (or `reject/`), for a signed-in tech
lead's session (with its CSRF token), not for project tokens: Jenkins never decides. The same service as the
page decides, so the same rules hold: the requester gets 403 and nothing changes."""

from django.contrib.auth.decorators import login_not_required
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.response import Response
from rest_framework.views import APIView

from deliveries.models import Promotion
from promotions import services


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
