"""The Content-Security-Policy header, as django-csp writes it, without rebuilding it for every response.

django-csp builds the policy string anew for each response (about 0.1 ms here, twice with the report-only
pass): a tax on every Jenkins callback for a header whose value only changes with the settings. Responses that
carry no per-view change (csp_update, csp_replace, csp_exempt) and used no nonce get the site-wide policy built
once; the others go through django-csp unchanged.
"""

from __future__ import annotations

from csp.constants import HEADER
from csp.middleware import CheckableLazyObject, CSPMiddleware
from csp.utils import build_policy
from django.conf import settings

PER_VIEW_ATTRIBUTES = ("_csp_config", "_csp_update", "_csp_replace", "_csp_exempt", "_csp_config_ro",
                       "_csp_update_ro", "_csp_replace_ro", "_csp_exempt_ro")


class CachedPolicyCSPMiddleware(CSPMiddleware):
    _built_for = None
    _policy = ""

    def process_response(self, request, response):
        changed_per_view = any(hasattr(response, name) for name in PER_VIEW_ATTRIBUTES)
        if (changed_per_view or getattr(request, "_csp_nonce", None) is not None
                or getattr(settings, "CONTENT_SECURITY_POLICY_REPORT_ONLY", None)
                or settings.CONTENT_SECURITY_POLICY.get("EXCLUDE_URL_PREFIXES")
                or (settings.DEBUG and response.status_code in (404, 500))):
            return super().process_response(request, response)
        if HEADER not in response:
            response[HEADER] = self.site_policy()
        # As django-csp does: a nonce asked for after the header is written is an error, not a silent hole.
        request.csp_nonce = CheckableLazyObject(self._csp_nonce_post_response)
        return response

    def site_policy(self) -> str:
        policy = settings.CONTENT_SECURITY_POLICY
        if policy is not self._built_for:  # built again when the settings change (tests override them)
            type(self)._policy, type(self)._built_for = build_policy(), policy
        return self._policy
