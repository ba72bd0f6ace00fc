"""Who may call the mock: the operator's token, application-bound tokens, ``/token`` logins and
external launches, all timed by one injectable clock.

:class:`MockAuth` is what a mock handler sees of authentication (``ctx.auth``): the server keeps
one and delegates its public token methods to it. Tests pass ``MockSectraServer(clock=...)`` and
advance that clock to expire issued tokens, instead of sleeping.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from collections.abc import Callable, Mapping
from typing import Literal

__all__ = ["MockAuth"]


class MockAuth:
    """Token bookkeeping for one mock server; thread-safe (the mock may run in a background thread).

    ``token``: the operator's token, valid for every application. ``users``: username → password
    for ``/token`` login. ``session_token``: the IDS7 user session external launches carry.
    ``token_lifetime``: seconds a ``/token`` token lives, measured by ``clock`` (monotonic seconds).
    """

    def __init__(
        self, *, token: str, users: Mapping[str, str], session_token: str, token_lifetime: int,
        clock: Callable[[], float],
    ) -> None:
        self.token = token
        self.users = dict(users)
        self.session_token = session_token
        self.token_lifetime = token_lifetime
        self.clock = clock
        #: How many ``/token`` logins succeeded.
        self.logins = 0
        #: Tokens issued by /token login: token -> (application, expiry by ``clock``).
        self._issued: dict[str, tuple[str, float]] = {}
        #: The callback token of each application (invocations, launches): token -> application.
        self._app_tokens: dict[str, str] = {}
        self._token_of_app: dict[str, str] = {}
        #: Requests launched with launch(): request id -> the application it is for (None: any).
        self._launches: dict[str, str | None] = {}
        self._lock = threading.Lock()

    def check_password(self, username: str, password: str) -> bool:
        """Whether ``username`` exists and ``password`` is theirs (compared in constant time)."""
        expected = self.users.get(username)
        return expected is not None and hmac.compare_digest(expected.encode(), password.encode())

    def issue_token(self, application_id: str) -> str:
        """A fresh bearer token for ``application_id``, valid ``token_lifetime`` seconds (what
        ``/token`` hands out); refused on other applications' routes."""
        token = secrets.token_urlsafe(24)
        now = self.clock()
        with self._lock:
            self.logins += 1
            # Expired tokens are dropped here, so repeated logins do not pile up in memory.
            for old in [t for t, (_app, expiry) in self._issued.items() if expiry <= now]:
                del self._issued[old]
            self._issued[token] = (application_id, now + self.token_lifetime)
        return token

    def revoke_tokens(self) -> None:
        """Invalidate every token issued by ``/token`` (as expiry would)."""
        with self._lock:
            self._issued.clear()

    def app_token(self, application_id: str) -> str:
        """The callback token of ``application_id``: random, stable for the mock's lifetime."""
        with self._lock:
            token = self._token_of_app.get(application_id)
            if token is None:
                token = secrets.token_urlsafe(24)
                self._token_of_app[application_id] = token
                self._app_tokens[token] = application_id
            return token

    def token_scope(self, token: str) -> str | None | Literal[False]:
        """What ``token`` may reach: ``None`` every application (the operator's ``token``), an
        application id only that application, ``False`` nothing (unknown or expired)."""
        if hmac.compare_digest(token.encode(), self.token.encode()):
            return None
        with self._lock:
            app = self._app_tokens.get(token)
            if app is not None:
                return app
            issued = self._issued.get(token)
        if issued is not None and self.clock() < issued[1]:
            return issued[0]
        return False

    def record_launch(self, request_id: str, application_id: str | None) -> None:
        """Remember an external launch of ``request_id`` (for ``application_id``, or any)."""
        with self._lock:
            self._launches[request_id] = application_id

    def launched(self, request_id: str) -> tuple[bool, str | None]:
        """Whether ``request_id`` was launched, and the application it was launched for."""
        with self._lock:
            return request_id in self._launches, self._launches.get(request_id)
