"""The REST API v1: Jenkins callbacks, authenticated with a project token.

Views are thin: they check the token's project against the URL, validate with a serializer, call one
service and answer. A token only ever sees its own project: another project's slug is a 404, as is an
unknown one, so a token cannot tell which projects exist.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import APIException, NotFound, ValidationError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from deliveries import services
from deliveries.api_auth import ProjectTokenAuthentication
from deliveries.serializers import (
    ArtifactInSerializer,
    ArtifactWithRunOutSerializer,
    CheckInSerializer,
    CheckOutSerializer,
    DeploymentInSerializer,
    DeploymentOutSerializer,
    ErrorSerializer,
    NotificationInSerializer,
    NotificationOutSerializer,
    ReportInSerializer,
    ReportOutSerializer,
    RunInSerializer,
    RunOutSerializer,
    StageInSerializer,
    StageWithRunOutSerializer,
    artifact_payload,
    check_payload,
    deployment_payload,
    report_payload,
    run_payload,
    stage_payload,
)
from environments import availability
from environments import services as environment_services
from portal.parsers import JSONParser
from portal.throttles import LimitFailedAuthentication
from promotions import services as promotion_services
from scanners import services as scanner_services

# A multipart body is the file plus a few hundred bytes of boundaries and headers.
MULTIPART_SLACK_BYTES = 64 * 1024


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The upload is too large."
    default_code = "too_large"


class NotificationTokenAuthentication(ProjectTokenAuthentication):
    """The Notification plugin cannot send headers: the token may come in the URL (`?token=`), in an
    `X-Portal-Token` header, or as a Bearer token. Prefer the header where the sender allows it: URLs end up
    in access logs."""

    def authenticate(self, request):
        token = request.query_params.get("token") or request.META.get("HTTP_X_PORTAL_TOKEN")
        if token:
            return self.authenticate_token(token.strip())
        return super().authenticate(request)


class ProjectTokenScheme(OpenApiAuthenticationExtension):
    target_class = "deliveries.api_auth.ProjectTokenAuthentication"
    match_subclasses = True
    name = "projectToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "dp_<8 hex>_<secret>",
            "description": "A project token (admin: Projects > Issue a new API token, or manage.py "
                           "create_project_token SLUG).",
        }


class NotificationTokenScheme(OpenApiAuthenticationExtension):
    target_class = "deliveries.api.NotificationTokenAuthentication"
    priority = 1  # before ProjectTokenScheme, which matches its subclasses
    name = ["projectTokenBearer", "projectTokenInQuery", "projectTokenInHeader"]

    def get_security_definition(self, auto_schema):
        return [
            ProjectTokenScheme.get_security_definition(self, auto_schema),
            {"type": "apiKey", "in": "query", "name": "token"},
            {"type": "apiKey", "in": "header", "name": "X-Portal-Token"},
        ]

    def get_security_requirement(self, auto_schema):
        # Any one of the three is enough: OpenAPI ORs the items of a security list and ANDs the schemes inside one.
        return [{name: []} for name in self.name]


def actor_label(request) -> str:
    return services.actor_label_of(request.auth)


def project_of(request, slug: str):
    """The token's project if the URL names it; 404 otherwise (unknown, or another project's)."""
    project = request.user.project
    if project.slug != slug:
        raise NotFound("No such project.")
    return project


def validated(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The callback contradicts what the portal knows."
    default_code = "conflict"


def callback_error(exc: services.CallbackError) -> APIException:
    """400 naming the field; 409 naming each field that contradicts what the portal knows."""
    if isinstance(exc, services.CallbackConflict):
        return Conflict({name: [message] for name, message in exc.fields.items()})
    return ValidationError({exc.field: [exc.message]})


ERRORS = {
    400: OpenApiResponse(description="Invalid input: the body names each offending field"),
    401: OpenApiResponse(ErrorSerializer, description="Missing, invalid or revoked token"),
    404: OpenApiResponse(ErrorSerializer, description="No such project for this token (or no such run)"),
}
TOO_MANY_FAILURES = OpenApiResponse(
    ErrorSerializer, description="Too many refused tokens from this address (API_AUTH_FAILURE_RATE): see Retry-After")
IDENTITY_CONFLICT = OpenApiResponse(
    description="Contradicts a finished run's branch, commit or build URL (audited; nothing changed): the body "
                "names each field")
BUILD_NUMBER = OpenApiParameter("build_number", int, OpenApiParameter.PATH, description="Jenkins build number")
SLUG = OpenApiParameter("slug", str, OpenApiParameter.PATH, description="The project's slug")


class AnswerInJSON(DefaultContentNegotiation):
    """The callback API answers JSON, its one renderer, whatever the Accept header asks (DRF's "ignore the client"
    negotiation): weighing the header cost every callback 3% of its CPU for a choice of one. Bodies are still
    matched to the parsers by their Content-Type (415 otherwise)."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class CallbackView(APIView):
    authentication_classes = [ProjectTokenAuthentication]
    parser_classes = [JSONParser]
    content_negotiation_class = AnswerInJSON


class RunsView(CallbackView):
    @extend_schema(
        operation_id="upsert_run",
        summary="Create or update a run by build number",
        parameters=[SLUG],
        request=RunInSerializer,
        responses={201: RunOutSerializer, 200: RunOutSerializer, 409: IDENTITY_CONFLICT, **ERRORS},
    )
    def post(self, request, slug):
        project = project_of(request, slug)
        data = validated(RunInSerializer, request.data)
        try:
            run, created = services.upsert_run(
                project=project, build_number=data["build_number"], fields=data, actor_label=actor_label(request)
            )
        except services.CallbackError as exc:
            raise callback_error(exc) from None
        run = services.get_run(project=project, build_number=run.build_number)
        return Response(run_payload(run, project=project), status=201 if created else 200)


class RunView(CallbackView):
    @extend_schema(
        operation_id="get_run",
        summary="A run with its stages, artifacts and reports",
        parameters=[SLUG, BUILD_NUMBER],
        responses={200: RunOutSerializer, **ERRORS},
    )
    def get(self, request, slug, build_number):
        project = project_of(request, slug)
        run = services.get_run(project=project, build_number=build_number)
        if run is None:
            raise NotFound("No run with this build number.")
        return Response(run_payload(run, project=project))


class StagesView(CallbackView):
    @extend_schema(
        operation_id="upsert_stage",
        summary="Create or update a stage of a run by name",
        description="Creates the run if the build number is new. Finished statuses win over running and pending, "
                    "known times are kept, `started_at` keeps the earliest known.",
        parameters=[SLUG, BUILD_NUMBER],
        request=StageInSerializer,
        responses={201: StageWithRunOutSerializer, 200: StageWithRunOutSerializer, **ERRORS},
    )
    def post(self, request, slug, build_number):
        project = project_of(request, slug)
        data = validated(StageInSerializer, request.data)
        try:
            stage, created = services.upsert_stage(
                project=project, build_number=build_number, name=data["name"], fields=data,
                actor_label=actor_label(request),
            )
        except services.CallbackError as exc:
            raise NotFound("No such build number.") from exc
        body = stage_payload(stage)
        body["build_number"] = build_number
        body["run_status"] = stage.run.status
        return Response(body, status=201 if created else 200)


class ArtifactsView(CallbackView):
    @extend_schema(
        operation_id="upsert_artifact",
        summary="Create or update an image of a run by repository and tag",
        parameters=[SLUG, BUILD_NUMBER],
        request=ArtifactInSerializer,
        responses={201: ArtifactWithRunOutSerializer, 200: ArtifactWithRunOutSerializer, **ERRORS},
    )
    def post(self, request, slug, build_number):
        project = project_of(request, slug)
        data = validated(ArtifactInSerializer, request.data)
        try:
            artifact, created = services.upsert_artifact(
                project=project, build_number=build_number, repository=data["repository"], tag=data["tag"],
                fields=data, actor_label=actor_label(request),
            )
        except services.CallbackError as exc:
            raise NotFound("No such build number.") from exc
        return Response({**artifact_payload(artifact), "build_number": build_number}, status=201 if created else 200)


class ReportsView(CallbackView):
    parser_classes = [MultiPartParser]

    @extend_schema(
        operation_id="upload_report",
        summary="Upload a Trivy, Gauntlt or JMeter report (multipart/form-data)",
        description="The raw file is stored at once and parsed in the background: follow `url`. The same file "
                    "again answers 200 with the report already received.",
        parameters=[SLUG, BUILD_NUMBER],
        request={"multipart/form-data": ReportInSerializer},
        responses={
            202: ReportOutSerializer,
            200: ReportOutSerializer,
            413: OpenApiResponse(ErrorSerializer, description="Over REPORT_MAX_BYTES; nothing is stored"),
            415: OpenApiResponse(ErrorSerializer, description="Not multipart/form-data"),
            **ERRORS,
        },
    )
    def post(self, request, slug, build_number):
        project = project_of(request, slug)
        limit = settings.REPORT_MAX_BYTES
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > limit + MULTIPART_SLACK_BYTES:
            raise PayloadTooLarge(too_large_message(length, limit))
        data = validated(ReportInSerializer, request.data)
        upload = data["file"]
        if upload.size > limit:
            raise PayloadTooLarge(too_large_message(upload.size, limit))
        try:
            report, created = scanner_services.upload_report(
                project=project, build_number=build_number, file=upload, original_name=upload.name or "report",
                kind=data.get("kind") or "", actor_label=actor_label(request),
            )
        except services.CallbackError as exc:
            raise NotFound("No such build number.") from exc
        return Response(report_payload(report), status=202 if created else 200)


def too_large_message(size: int, limit: int) -> str:
    return (f"The upload is {size:,} bytes, over the {limit:,} bytes allowed (REPORT_MAX_BYTES). "
            "Nothing was stored.")


class DeploymentsView(CallbackView):
    @extend_schema(
        operation_id="record_deployment",
        summary="Record which images of a run went to which environment",
        description="The same callback twice is one deployment. Images are linked to the run's artifacts with "
                    "the same repository and tag (or digest). A deployment that breaks a deploy rule (no promotion "
                    "approved for the commit where one is needed, a freeze window, images not the run's) is still "
                    "recorded, and `rule_violations` says which, in words.",
        parameters=[SLUG, BUILD_NUMBER],
        request=DeploymentInSerializer,
        responses={201: DeploymentOutSerializer, 200: DeploymentOutSerializer, **ERRORS},
    )
    def post(self, request, slug, build_number):
        project = project_of(request, slug)
        data = validated(DeploymentInSerializer, request.data)
        try:
            deployment, created = environment_services.record_run_deployment(
                project=project, build_number=build_number, environment=data["environment"],
                status=data["status"], images=data.get("images") or [], started_at=data.get("started_at"),
                finished_at=data.get("finished_at"), log=data.get("log") or "", actor_label=actor_label(request),
            )
        except services.CallbackError as exc:
            raise NotFound("No such build number.") from exc
        # Kept (it happened), but flagged, audited and said in the answer when it broke a deploy rule.
        promotion_services.flag_rule_violations(deployment=deployment, images=data.get("images") or [],
                                                actor_label=actor_label(request))
        return Response(deployment_payload(deployment, build_number=build_number), status=201 if created else 200)


class ChecksView(CallbackView):
    @extend_schema(
        operation_id="record_check",
        summary="Record an availability check of the project in an environment",
        description="Jenkins' availability stage reports what it found; the check is kept with the portal's own, "
                    "against what the project runs there now.",
        parameters=[SLUG],
        request=CheckInSerializer,
        responses={201: CheckOutSerializer, **ERRORS},
    )
    def post(self, request, slug):
        project = project_of(request, slug)
        data = validated(CheckInSerializer, request.data)
        check = availability.record_reported_check(
            project=project, environment=data["environment"], url=data["url"],
            result=availability.Probe(ok=data["ok"], status_code=data.get("status_code"),
                                      latency_ms=data.get("latency_ms"), error=data.get("error") or ""),
        )
        return Response(check_payload(check), status=201)


class JenkinsNotificationView(LimitFailedAuthentication, CallbackView):
    authentication_classes = [NotificationTokenAuthentication]
    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="jenkins_notification",
        summary="Jenkins Notification plugin endpoint",
        description="Accepts the Notification plugin's JSON as the plugin sends it (unknown fields are ignored). "
                    "The project is the token's: `?token=`, an `X-Portal-Token` header, or Bearer.",
        request=NotificationInSerializer,
        responses={
            200: NotificationOutSerializer,
            400: OpenApiResponse(description="Malformed JSON, or no build number or phase"),
            401: ERRORS[401],
            429: TOO_MANY_FAILURES,
            409: OpenApiResponse(description="About another Jenkins job than the project's (`name`), or contradicts "
                                             "a finished run's branch, commit or build URL (audited); nothing changed"),
        },
    )
    def post(self, request):
        project = request.user.project
        try:
            run = services.apply_notification(project=project, payload=request.data, actor_label=actor_label(request))
        except services.CallbackError as exc:
            raise callback_error(exc) from None
        return Response({"run": run.pk, "build_number": run.build_number, "status": run.status})


def api_view(view_class):
    """The view, exempt from the site's login requirement: the API authenticates with project tokens."""
    return login_not_required(view_class.as_view())

