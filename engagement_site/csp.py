"""The Content-Security-Policy header (django-csp; settings.CONTENT_SECURITY_POLICY).

Our pages run only scripts from our own origin: no inline <script>, no on* handler
attributes, no eval (htmx's is switched off in base.html). One exception, for staff
only: django-rq's queue pages (a third-party admin add-on) carry inline scripts, so
under /django-rq/ the policy also allows inline scripts; everything else stays."""

from __future__ import annotations

from csp.constants import UNSAFE_INLINE
from csp.middleware import CSPMiddleware, PolicyParts

INLINE_SCRIPT_PREFIXES = ("/django-rq/",)


class ContentSecurityPolicyMiddleware(CSPMiddleware):
    def get_policy_parts(self, request, response, report_only: bool = False) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only)
        if not report_only and request.path_info.startswith(INLINE_SCRIPT_PREFIXES):
            parts.update = {**(parts.update or {}), "script-src": [UNSAFE_INLINE]}
        return parts
