"""API keys: the key set, the constant-time check, and the route dependencies that enforce a
scope (``ReadAccess``, ``WriteAccess``, ``MetricsAccess``).

With no key configured every route is open. With keys, every ``/v1`` route needs
``Authorization: Bearer <key>``: none or an unknown key answers 401, a read key on a write
route 403, both in the one error body with an RFC 6750 ``WWW-Authenticate`` header. Keys are
kept only as SHA-256 digests and never logged; a log line names a key by its fingerprint (the
first 8 hex digits of its digest).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Sequence
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.config import ApiKey, ApiScope
from app.deps import SettingsDep
from app.errors import ApiError

logger = logging.getLogger(__name__)

REALM = "mmdshot"

bearer = HTTPBearer(
    auto_error=False,
    description="An API key from `MMDSHOT_API_KEYS` or `MMDSHOT_API_KEYS_FILE` (read: list, "
    "get, select; write: everything). A service started without keys ignores it.",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def fingerprint(secret: str) -> str:
    """A key's name in logs: 8 hex digits of its SHA-256, not enough to recover it."""
    return _digest(secret).hex()[:8]


class ApiKeys:
    """The configured keys, held as digests; :meth:`scope_of` checks a presented token."""

    def __init__(self, keys: Sequence[ApiKey]) -> None:
        self._digests = [(_digest(key.secret), key.scope) for key in keys]
        self.fingerprints = [(fingerprint(key.secret), key.scope) for key in keys]

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def scope_of(self, token: str) -> ApiScope | None:
        """The scope ``token`` grants, or None for an unknown one. Digests of equal length are
        compared with :func:`hmac.compare_digest` against every key, without stopping at a
        match, so the time taken says nothing about the keys."""
        presented = _digest(token)
        granted: ApiScope | None = None
        for digest, scope in self._digests:
            if hmac.compare_digest(presented, digest):
                granted = scope
        return granted

    def log_summary(self) -> None:
        if not self.enabled:
            logger.warning("no API keys configured: every route is open (MMDSHOT_API_KEYS)")
            return
        names = ", ".join(f"{name} ({scope})" for name, scope in self.fingerprints)
        logger.info("API keys required on /v1: %d keys, fingerprints %s", len(self._digests), names)


def _challenge(error: str | None = None, scope: ApiScope | None = None) -> dict[str, str]:
    parts = [f'realm="{REALM}"']
    if error is not None:
        parts.append(f'error="{error}"')
    if scope is not None:
        parts.append(f'scope="{scope}"')
    return {"WWW-Authenticate": "Bearer " + ", ".join(parts)}


def authorize(
    keys: ApiKeys, credentials: HTTPAuthorizationCredentials | None, needed: ApiScope
) -> None:
    """Nothing when ``credentials`` grant ``needed`` (or no keys are configured); else the
    401 or 403 :class:`ApiError`."""
    if not keys.enabled:
        return
    if credentials is None:
        raise ApiError(
            401,
            "unauthorized",
            "an API key is required: Authorization: Bearer <key>",
            headers=_challenge(),
        )
    granted = keys.scope_of(credentials.credentials)
    if granted is None:
        raise ApiError(401, "unauthorized", "unknown API key", headers=_challenge("invalid_token"))
    if needed == "write" and granted != "write":
        raise ApiError(
            403,
            "forbidden",
            "this API key may only read (list, get, select)",
            {"scope": granted, "required": needed},
            headers=_challenge("insufficient_scope", needed),
        )


async def get_api_keys(request: Request) -> ApiKeys:
    keys: ApiKeys = request.app.state.api_keys
    return keys


KeysDep = Annotated[ApiKeys, Depends(get_api_keys)]


async def require_read(keys: KeysDep, credentials: Credentials) -> None:
    """A read or write key (list, get, select)."""
    authorize(keys, credentials, "read")


async def require_write(keys: KeysDep, credentials: Credentials) -> None:
    """A write key (create, upsert, import, calibrate, delete)."""
    authorize(keys, credentials, "write")


async def require_metrics(keys: KeysDep, credentials: Credentials, settings: SettingsDep) -> None:
    """Any key when ``metrics_require_key`` is set; else open."""
    if settings.metrics_require_key:
        authorize(keys, credentials, "read")


ReadAccess = Depends(require_read)
WriteAccess = Depends(require_write)
MetricsAccess = Depends(require_metrics)
