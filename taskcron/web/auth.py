"""Who a request is: tokens, the login cookie, CSRF tokens and owner links. Pure: no I/O.

- A request carries `Authorization: Bearer TOKEN`, or the cookie `/login` set.
- The token (`web.token`) sees and acts; the read token (`web.read_token`) only sees.
- The cookie holds no token: it is `ROLE.NONCE.MAC`, the MAC keyed by that
  role's token, so changing a token ends its sessions.
- A form sent with the cookie carries the session's CSRF token (a MAC of its
  nonce); a Bearer request needs none, as no browser adds that header by itself.
- An owner link is signed with the token (see `taskcron.api.owner_signature`).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from taskcron.api import owner_signature

COOKIE = "taskcron_session"  #: The login cookie's name.
CSRF_FIELD = "csrf"  #: A form's CSRF token field.
CSRF_HEADER = "x-csrf-token"  #: ... or its header, for scripts that send the cookie.


class Role(str, enum.Enum):
    """What a request may do."""

    READ = "read"  #: See every page and JSON.
    ACT = "act"  #: See, and retry, cancel, pause, resume, remove, run now.


@dataclass(frozen=True, slots=True, kw_only=True)
class Who:
    """An authenticated request: its role, and its session nonce when it came by cookie."""

    role: Role
    nonce: str | None = None  #: None for a Bearer token: no CSRF token needed.

    @property
    def may_act(self) -> bool:
        """Whether it may change tasks."""
        return self.role is Role.ACT


@dataclass(frozen=True, slots=True, kw_only=True)
class Keys:
    """The dashboard's tokens."""

    token: str
    read_token: str | None = None

    def _key(self, role: Role) -> str | None:
        return self.token if role is Role.ACT else self.read_token

    def role_of(self, token: str) -> Role | None:
        """The role a token gives, or None when it is neither token."""
        for role in Role:
            key = self._key(role)
            if key is not None and _same(token, key):
                return role
        return None

    def _mac(self, role: Role, purpose: str, nonce: str) -> str:
        key = self._key(role)
        assert key is not None
        text = f"{purpose}:{role.value}:{nonce}".encode()
        return hmac.new(key.encode(), text, hashlib.sha256).hexdigest()

    def new_session(self, role: Role) -> str:
        """A fresh cookie value for `role`."""
        nonce = secrets.token_urlsafe(18)
        return f"{role.value}.{nonce}.{self._mac(role, 'session', nonce)}"

    def session(self, value: str) -> Who | None:
        """Who a cookie value stands for, or None when it is not a valid one."""
        role_name, _, rest = value.partition(".")
        nonce, _, mac = rest.partition(".")
        try:
            role = Role(role_name)
        except ValueError:
            return None
        if not nonce or self._key(role) is None:
            return None
        if not _same(mac, self._mac(role, "session", nonce)):
            return None
        return Who(role=role, nonce=nonce)

    def csrf(self, who: Who) -> str:
        """The CSRF token of a cookie session ("" for a Bearer request, which needs none)."""
        return "" if who.nonce is None else self._mac(who.role, "csrf", who.nonce)

    def csrf_ok(self, who: Who, sent: str | None) -> bool:
        """Whether a request may act without a forged form: Bearer, or the right CSRF token."""
        if who.nonce is None:
            return True
        return sent is not None and _same(sent, self.csrf(who))

    def owner_ok(self, owner: str, signature: str | None) -> bool:
        """Whether `signature` signs an owner link for `owner` with the token."""
        if not signature:
            return False
        return _same(signature, owner_signature(self.token, owner))


def _same(sent: str, expected: str) -> bool:
    """Whether two texts are equal, in constant time. As bytes: `compare_digest` refuses
    strings with non-ASCII characters, and a request may send any."""
    return hmac.compare_digest(
        sent.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


def bearer(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer TOKEN` header, if that is what it is."""
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None
