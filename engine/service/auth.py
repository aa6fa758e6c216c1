"""The trigger API's Basic auth (CALLFLOW_AUTH_ID / CALLFLOW_AUTH_TOKEN), checked in constant
time; the API and the console both ask `authorized(request)`."""

from __future__ import annotations

import base64
import binascii
import hmac

from starlette.requests import Request as HttpRequest


class BasicAuth:
    """The credentials a request must carry; `create_app` puts one in `app.state.auth`."""

    def __init__(self, auth_id: str, auth_token: str):
        self.auth_id = auth_id
        self._user, self._password = auth_id.encode(), auth_token.encode()

    def __repr__(self) -> str:  # never show the token
        return f"BasicAuth(auth_id={self.auth_id!r})"

    def allows(self, request: HttpRequest, url_auth_id: str | None = None) -> bool:
        """Does the Authorization header carry the pair (and, if given, does the auth id in
        the URL match it too)?"""
        header = request.headers.get("authorization", "")
        if header[:6].lower() != "basic ":
            return False
        try:
            user, sep, password = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return False
        ok = hmac.compare_digest(user.encode(), self._user) & hmac.compare_digest(password.encode(), self._password)
        if url_auth_id is not None:
            ok &= hmac.compare_digest(url_auth_id.encode(), self._user)
        return bool(ok and sep)


def auth_of(request: HttpRequest) -> BasicAuth:
    """The app's `BasicAuth`."""
    return request.app.state.auth


def authorized(request: HttpRequest, url_auth_id: str | None = None) -> bool:
    """Does the request carry the app's trigger API credentials?"""
    return request.app.state.auth.allows(request, url_auth_id)
