"""Bearer-token guard for every state-changing endpoint.

The token comes only from the environment (LEVIBOT_ADMIN_TOKEN) and is compared in
constant time. Without a configured token the admin endpoints answer 503 saying how
to set one, rather than being open.
"""

from __future__ import annotations

import hmac
import os

from fastapi import Header, HTTPException, Request

TOKEN_ENV = "LEVIBOT_ADMIN_TOKEN"


def require_admin(
    request: Request,
    authorization: str | None = Header(default=None),
    x_actor: str | None = Header(default=None),
) -> str:
    """The actor name for the audit log, once the bearer token checks out."""
    expected = os.environ.get(TOKEN_ENV, "")
    if not expected:
        raise HTTPException(
            status_code=503,
            detail=f"admin endpoints are disabled: set {TOKEN_ENV} in the server's environment "
            "and send 'Authorization: Bearer <token>'",
        )
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(
            status_code=401,
            detail="missing or wrong bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    host = request.client.host if request.client else "unknown"
    return f"{(x_actor or 'admin')[:64]}@{host}"
