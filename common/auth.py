"""Bearer-JWT authentication through the Auth Service, and role permissions.

The Auth Service validates a token and answers its claims: `sub`, `roles`
(ops, finance, lp, viewer) and, for lp, `participant_id` (SPEC Part B.12).
A validated token is cached in Redis under a hash of the token for at most
AUTH_CACHE_SECONDS (never past its expiry), so the Auth Service is asked once
per token per half-minute, not once per request.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import httpx
from django.conf import settings
from django.core.cache import cache
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from common.actors import Actor, ActorKind

logger = logging.getLogger("mms.auth")


class Role(StrEnum):
    OPS = "ops"
    FINANCE = "finance"
    LP = "lp"
    VIEWER = "viewer"


ALL_ROLES = frozenset(Role)


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of an API request."""

    sub: str
    roles: frozenset[Role]
    participant_id: str | None = None
    is_authenticated: bool = field(default=True, init=False)

    def has_any(self, roles: Collection[Role]) -> bool:
        return bool(self.roles.intersection(roles))

    @property
    def actor(self) -> Actor:
        return Actor(self.sub, ActorKind.USER)


class AuthServiceUnavailable(exceptions.APIException):
    status_code = 503
    default_code = "auth_service_unavailable"
    default_detail = "the Auth Service could not be reached; try again"


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    sub = claims.get("sub")
    raw_roles = claims.get("roles")
    if not isinstance(sub, str) or not sub or not isinstance(raw_roles, list):
        raise exceptions.AuthenticationFailed("token claims lack sub or roles")
    roles = frozenset(Role(r) for r in raw_roles if r in Role.__members__.values())
    participant_id = claims.get("participant_id")
    if Role.LP in roles and not participant_id:
        raise exceptions.AuthenticationFailed("an lp token must carry participant_id")
    return Principal(sub=sub, roles=roles, participant_id=participant_id or None)


def validate_token(token: str) -> Principal:
    key = "auth:token:" + hashlib.sha256(token.encode()).hexdigest()
    claims = cache.get(key)
    if claims is None:
        claims = _ask_auth_service(token)
        ttl = settings.AUTH_CACHE_SECONDS
        exp = claims.get("exp")
        if isinstance(exp, int | float):
            ttl = min(ttl, int(exp - time.time()))
        if ttl > 0:
            cache.set(key, claims, ttl)
    return principal_from_claims(claims)


def _ask_auth_service(token: str) -> dict[str, Any]:
    url = settings.AUTH_SERVICE_URL.rstrip("/") + "/v1/tokens/validate"
    try:
        response = httpx.post(url, json={"token": token}, timeout=settings.AUTH_TIMEOUT_SECONDS)
    except httpx.HTTPError as exc:
        logger.error("auth service unreachable at %s: %s", url, type(exc).__name__)
        raise AuthServiceUnavailable from exc
    if response.status_code in (401, 403):
        raise exceptions.AuthenticationFailed("the token is invalid or expired")
    if response.status_code != 200:
        logger.error("auth service answered %s", response.status_code)
        raise AuthServiceUnavailable
    try:
        claims = response.json()
    except ValueError:
        claims = None
    if not isinstance(claims, dict):
        logger.error("auth service answered 200 without a JSON object")
        raise AuthServiceUnavailable
    return claims


DEV_PRINCIPAL = Principal(sub="dev-no-auth", roles=ALL_ROLES)


class AuthServiceAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[Principal, str] | None:
        if settings.DISABLE_AUTH:
            return DEV_PRINCIPAL, ""
        header = get_authorization_header(request).split()
        if not header:
            return None
        if header[0].lower() != b"bearer" or len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization must be 'Bearer <token>'")
        token = header[1].decode("ascii", errors="replace")
        return validate_token(token), token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="mms"'


READ_ROLES = frozenset({Role.OPS, Role.FINANCE, Role.VIEWER})
OPS_ONLY = frozenset({Role.OPS})
FINANCE_ONLY = frozenset({Role.FINANCE})


class RolePermission(BasePermission):
    """Reads need one of the view's `read_roles`; writes one of its `write_roles`.

    An lp may read only views that declare `lp_readable = True`; those views
    scope their data to the caller's participant (see `lp_participant_id`).
    """

    def has_permission(self, request: Request, view: Any) -> bool:
        principal = request.user
        if not isinstance(principal, Principal):
            raise exceptions.NotAuthenticated("a bearer token is required")
        if request.method in SAFE_METHODS:
            allowed = set(getattr(view, "read_roles", READ_ROLES))
            if getattr(view, "lp_readable", False):
                allowed.add(Role.LP)
        else:
            allowed = set(getattr(view, "write_roles", OPS_ONLY))
        if not principal.has_any(allowed):
            raise exceptions.PermissionDenied(
                f"this action needs one of the roles: {', '.join(sorted(allowed))}"
            )
        return True


def request_actor(request: Request) -> Actor:
    principal = request.user
    if not isinstance(principal, Principal):
        raise exceptions.NotAuthenticated("a bearer token is required")
    return principal.actor


def lp_participant_id(request: Request) -> str | None:
    """The participant an lp caller is confined to, or None for staff roles."""
    principal = request.user
    if isinstance(principal, Principal) and not principal.has_any(READ_ROLES):
        return principal.participant_id
    return None


def require_own_participant(request: Request, participant_id: object) -> None:
    own = lp_participant_id(request)
    if own is not None and own != str(participant_id):
        raise exceptions.PermissionDenied("an lp may read only its own participant's data")
