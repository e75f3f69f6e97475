"""Single sign-on with OpenID Connect (authorization code flow with PKCE); ID tokens are
checked with joserfc (Authlib's JOSE library).

The provider is found through its discovery document; the ID token's signature (the
provider's JWKS), issuer, audience, expiry and nonce are checked before anyone is signed in.
State, nonce and the PKCE verifier travel in a signed, short-lived cookie, so any replica can
finish a sign-in another one started.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from hearth.errors import HearthError

_METADATA_SECONDS = 3600.0
STATE_COOKIE = "hearth_oidc"
STATE_SECONDS = 600


class SignOnFailed(HearthError):
    status = 400
    type = "invalid_request_error"
    code = "sign_on_failed"


@dataclass(frozen=True)
class Identity:
    """Who the provider says signed in."""

    subject: str  # "<issuer>|<sub>": unique across providers
    email: str | None
    email_verified: bool
    name: str


class OidcClient:
    def __init__(
        self,
        issuer: str,
        client_id: str,
        client_secret: str | None,
        *,
        scopes: str,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self.client_secret = client_secret
        self.scopes = scopes
        self._http: aiohttp.ClientSession | None = None
        self._metadata: tuple[float, dict[str, Any]] | None = None
        self._keys: Any = None

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    def _session(self) -> aiohttp.ClientSession:
        # Made on first use, inside the running event loop, as aiohttp requires.
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        return self._http

    async def _fetch(self, method: str, url: str, **options: Any) -> tuple[int, Any]:
        """Status and JSON body (None if not JSON) of a call to the provider."""
        try:
            async with self._session().request(method, url, **options) as response:
                text = await response.text()
                try:
                    body = json.loads(text)
                except ValueError:
                    body = None
                return response.status, body if body is not None else text
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SignOnFailed(f"The identity provider did not answer: {exc}") from exc

    async def start(self, redirect_uri: str) -> tuple[str, dict[str, str]]:
        """The provider's sign-in URL, and the state to keep until the callback."""
        metadata = await self._discover()
        state = {
            "state": secrets.token_urlsafe(24),
            "nonce": secrets.token_urlsafe(24),
            "verifier": secrets.token_urlsafe(48),  # PKCE: 64 characters
        }
        query = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": redirect_uri,
            "scope": self.scopes,
            "state": state["state"],
            "nonce": state["nonce"],
            "code_challenge": s256(state["verifier"]),
            "code_challenge_method": "S256",
        }
        return f"{metadata['authorization_endpoint']}?{urlencode(query)}", state

    async def finish(
        self, redirect_uri: str, code: str, returned_state: str, kept: dict[str, str]
    ) -> Identity:
        """Exchange the code for tokens and check the ID token; the signed-in identity."""
        if not code or not returned_state or returned_state != kept.get("state"):
            raise SignOnFailed("The sign-in expired or did not start here; try again.")
        metadata = await self._discover()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": self.client_id,
            "code_verifier": kept["verifier"],
        }
        if self.client_secret:
            form["client_secret"] = self.client_secret
        status, body = await self._fetch("POST", metadata["token_endpoint"], data=form)
        if status != 200 or not isinstance(body, dict):
            raise SignOnFailed(f"The identity provider refused the sign-in ({str(body)[:200]})")
        id_token = body.get("id_token")
        if not id_token:
            raise SignOnFailed("The identity provider sent no ID token.")
        claims = await self._verify(id_token, kept["nonce"])
        email = claims.get("email")
        return Identity(
            subject=f"{self.issuer}|{claims['sub']}",
            email=email,
            email_verified=bool(claims.get("email_verified")),
            name=claims.get("name") or claims.get("preferred_username") or (email or "")[:200],
        )

    async def _verify(self, id_token: str, nonce: str) -> dict[str, Any]:
        registry = JWTClaimsRegistry(
            leeway=60,
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": self.client_id},
            sub={"essential": True},
            exp={"essential": True},
            nonce={"essential": True, "value": nonce},
        )
        for refresh in (False, True):  # a key we do not know yet: the provider rotated them
            keys = await self._jwks(refresh=refresh)
            try:
                token = jwt.decode(id_token, keys, algorithms=["RS256", "ES256", "PS256"])
                registry.validate(token.claims)
                return dict(token.claims)
            except JoseError as exc:
                if refresh or exc.error not in ("missing_key", "bad_signature"):
                    raise SignOnFailed(f"The ID token is not valid: {exc.error}") from exc
            except ValueError as exc:
                raise SignOnFailed(f"The ID token is malformed: {exc}") from exc
        raise SignOnFailed("The ID token is signed with a key the provider does not publish.")

    async def _discover(self) -> dict[str, Any]:
        now = time.monotonic()
        if self._metadata is None or self._metadata[0] < now:
            url = f"{self.issuer}/.well-known/openid-configuration"
            status, metadata = await self._fetch("GET", url)
            if status != 200 or not isinstance(metadata, dict):
                raise SignOnFailed(f"The identity provider's discovery failed ({status}).")
            if metadata.get("issuer", "").rstrip("/") != self.issuer:
                raise SignOnFailed("The identity provider's discovery names another issuer.")
            self._metadata = (now + _METADATA_SECONDS, metadata)
        return self._metadata[1]

    async def _jwks(self, *, refresh: bool) -> Any:
        if self._keys is None or refresh:
            metadata = await self._discover()
            status, keys = await self._fetch("GET", metadata["jwks_uri"])
            if status != 200 or not isinstance(keys, dict):
                raise SignOnFailed(f"The identity provider's keys are unavailable ({status}).")
            self._keys = KeySet.import_key_set(keys)
        return self._keys


def s256(verifier: str) -> str:
    """PKCE's S256 code challenge (RFC 7636)."""
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
