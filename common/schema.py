"""drf-spectacular: describe the bearer-JWT scheme in the OpenAPI document."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class AuthServiceAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "common.auth.AuthServiceAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A JWT issued by the Auth Service; roles ops, finance, lp, viewer.",
        }
