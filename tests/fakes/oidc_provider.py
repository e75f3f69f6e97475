"""A fake OpenID Connect provider speaking the real protocol over HTTP: discovery, an
authorization endpoint that signs in a chosen user at once (no login form), a token endpoint
that checks the client secret, the code and the PKCE verifier, and RS256-signed ID tokens
with their JWKS. Stands in for Keycloak / Entra ID / Google, which cannot run here."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode

from joserfc import jwt
from joserfc.jwk import RSAKey

from hearth.accounts.oidc import s256
from tests.fakes._server import FakeServer, Receive, RecordedRequest, Send

CLIENT_ID = "hearth"
CLIENT_SECRET = "s3cret-for-tests"


@dataclass(kw_only=True)
class FakeOidcProvider(FakeServer):
    # Who the next sign-in is: OpenID claims (sub, email, email_verified, name).
    user: dict[str, Any] = field(default_factory=dict)
    # Tamper with the next ID token: "nonce", "audience", "expired", "signature".
    spoil: str | None = None
    _codes: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.key = RSAKey.generate_key(2048, parameters={"kid": "k1"}, private=True)
        self.other_key = RSAKey.generate_key(2048, parameters={"kid": "k1"}, private=True)

    @property
    def issuer(self) -> str:
        return self.base_url

    async def _respond(self, request: RecordedRequest, receive: Receive, send: Send) -> None:
        if request.path == "/.well-known/openid-configuration":
            await self._send_json(
                send,
                200,
                {
                    "issuer": self.issuer,
                    "authorization_endpoint": f"{self.issuer}/authorize",
                    "token_endpoint": f"{self.issuer}/token",
                    "jwks_uri": f"{self.issuer}/jwks",
                    "response_types_supported": ["code"],
                    "code_challenge_methods_supported": ["S256"],
                },
            )
        elif request.path == "/jwks":
            await self._send_json(send, 200, {"keys": [self.key.as_dict(private=False)]})
        elif request.path == "/authorize":
            await self._authorize(parse_qs(request.query), send)
        elif request.path == "/token":
            await self._token(parse_qs(request.json or ""), request.headers, send)
        else:
            await self._send_json(send, 404, {"error": "not_found"})

    async def _authorize(self, query: dict[str, list[str]], send: Send) -> None:
        one = {k: v[0] for k, v in query.items()}
        if one.get("client_id") != CLIENT_ID or one.get("code_challenge_method") != "S256":
            await self._send_json(send, 400, {"error": "invalid_request"})
            return
        code = secrets.token_urlsafe(16)
        self._codes[code] = {**one, "user": dict(self.user)}
        location = f"{one['redirect_uri']}?{urlencode({'code': code, 'state': one['state']})}"
        await send(
            {
                "type": "http.response.start",
                "status": 302,
                "headers": [(b"location", location.encode())],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    async def _token(self, form: dict[str, list[str]], headers: dict[str, str], send: Send) -> None:
        one = {k: v[0] for k, v in form.items()}
        grant = self._codes.pop(one.get("code", ""), None)
        if (
            grant is None
            or one.get("client_secret") != CLIENT_SECRET
            or one.get("redirect_uri") != grant["redirect_uri"]
            or s256(one.get("code_verifier", "")) != grant["code_challenge"]
        ):
            await self._send_json(send, 400, {"error": "invalid_grant"})
            return
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 300,
            "nonce": grant["nonce"],
            **grant["user"],
        }
        key = self.key
        if self.spoil == "nonce":
            claims["nonce"] = "something else"
        elif self.spoil == "audience":
            claims["aud"] = "another-app"
        elif self.spoil == "expired":
            claims["exp"] = now - 3600
        elif self.spoil == "signature":
            key = self.other_key
        self.spoil = None
        token = jwt.encode({"alg": "RS256", "kid": "k1"}, claims, key)
        await self._send_json(
            send, 200, {"access_token": "at", "token_type": "Bearer", "id_token": token}
        )
