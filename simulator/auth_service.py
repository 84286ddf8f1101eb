"""Auth Service stand-in: issues and validates HS256 JWTs over HTTP.

    POST /v1/tokens           {"sub", "roles", "participant_id"?, "ttl_seconds"?}
                              -> {"token", "expires_at"}
    POST /v1/tokens/validate  {"token"} -> 200 claims | 401 {"error"}
    POST /v1/tokens/revoke    {"token"} -> 204
    GET  /v1/stats            -> {"issued", "validations"}
    GET  /healthz

Run: python -m simulator.auth_service --port 8096
"""

from __future__ import annotations

import argparse
import os
import secrets
import time
from typing import Any

import jwt
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from telemetry import logs

ROLES = {"ops", "finance", "lp", "viewer"}
MAX_TTL_SECONDS = 24 * 3600


def create_app(secret: str | None = None) -> Starlette:
    key = secret or os.environ.get("SIM_AUTH_SECRET") or secrets.token_hex(32)
    stats = {"issued": 0, "validations": 0}
    revoked: set[str] = set()

    async def issue(request: Request) -> JSONResponse:
        body = await _json(request)
        if isinstance(body, JSONResponse):
            return body
        sub, roles = body.get("sub"), body.get("roles")
        if not isinstance(sub, str) or not sub:
            return _error(400, "sub must be a non-empty string")
        if not isinstance(roles, list) or not roles or not set(roles) <= ROLES:
            return _error(400, f"roles must be a non-empty list drawn from {sorted(ROLES)}")
        participant_id = body.get("participant_id")
        if "lp" in roles and not isinstance(participant_id, str):
            return _error(400, "an lp token needs participant_id")
        ttl = body.get("ttl_seconds", 3600)
        if not isinstance(ttl, int) or not 0 < ttl <= MAX_TTL_SECONDS:
            return _error(400, f"ttl_seconds must be an integer in 1..{MAX_TTL_SECONDS}")
        now = int(time.time())
        claims: dict[str, Any] = {
            "sub": sub,
            "roles": roles,
            "iat": now,
            "exp": now + ttl,
            "jti": secrets.token_hex(8),
        }
        if participant_id:
            claims["participant_id"] = participant_id
        stats["issued"] += 1
        return JSONResponse(
            {"token": jwt.encode(claims, key, algorithm="HS256"), "expires_at": claims["exp"]},
            status_code=201,
        )

    async def validate(request: Request) -> JSONResponse:
        body = await _json(request)
        if isinstance(body, JSONResponse):
            return body
        stats["validations"] += 1
        token = body.get("token")
        if not isinstance(token, str):
            return _error(400, "token must be a string")
        try:
            claims = jwt.decode(token, key, algorithms=["HS256"], options={"require": ["exp"]})
        except jwt.PyJWTError as exc:
            return _error(401, f"invalid token: {exc}")
        if claims.get("jti") in revoked:
            return _error(401, "token revoked")
        return JSONResponse(claims)

    async def revoke(request: Request) -> Response:
        body = await _json(request)
        if isinstance(body, JSONResponse):
            return body
        try:
            claims = jwt.decode(str(body.get("token")), key, algorithms=["HS256"])
        except jwt.PyJWTError as exc:
            return _error(400, f"invalid token: {exc}")
        revoked.add(claims["jti"])
        return Response(status_code=204)

    async def get_stats(request: Request) -> JSONResponse:
        return JSONResponse(stats)

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/v1/tokens", issue, methods=["POST"]),
            Route("/v1/tokens/validate", validate, methods=["POST"]),
            Route("/v1/tokens/revoke", revoke, methods=["POST"]),
            Route("/v1/stats", get_stats, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )


async def _json(request: Request) -> dict[str, Any] | JSONResponse:
    try:
        body = await request.json()
    except ValueError:
        return _error(400, "body must be JSON")
    if not isinstance(body, dict):
        return _error(400, "body must be a JSON object")
    return body


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def main() -> None:
    parser = argparse.ArgumentParser(description="TradeX Auth Service stand-in")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8096)
    args = parser.parse_args()
    logs.setup(os.environ.get("LOG_FORMAT", "json"), os.environ.get("LOG_LEVEL", "INFO"))
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="warning", log_config=None)


if __name__ == "__main__":
    main()
