"""Who a request is: tokens, the login cookie, CSRF tokens and owner links. Pure: no I/O.

- A request carries `Authorization: Bearer TOKEN`, or the cookie `/login` set.
- The token (`web.token`) sees and acts; the read token (`web.read_token`) only sees.
- Nothing is signed with a token itself. Each purpose has its own key, derived
  from the token with a label (`derive`): owner links, and for each role its
  sessions and its CSRF tokens. A signed message is `PURPOSE NUL FIELD NUL ...`
  (`sign`): no signature of one kind verifies as another, whatever an owner id
  holds, and changing a token ends everything signed with it.
- The cookie holds no token: it is `ROLE.NONCE.EXPIRES.MAC`, the MAC covering
  the role, the nonce and the expiry (Unix seconds); an expired, tampered or
  foreign cookie is no session.
- A form sent with the cookie carries the session's CSRF token (a MAC of its
  role and nonce); a Bearer request needs none, as no browser adds that header
  by itself.
- An owner link's `sig` signs its owner id (`owner_signature`).

Only the standard library: `TaskCron.owner_link` signs with it without the web extra.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

COOKIE = "taskcron_session"  #: The login cookie's name.
CSRF_FIELD = "csrf"  #: A form's CSRF token field.
CSRF_HEADER = "x-csrf-token"  #: ... or its header, for scripts that send the cookie.
SESSION_TTL = timedelta(hours=12)  #: How long a session lasts by default (`web.session_ttl`).

OWNER_LINK = "owner-link"  #: The purpose of an owner link's signature.
SESSION = "session"  #: ... of a login cookie's MAC.
CSRF = "csrf"  #: ... of a CSRF token.


class Role(str, enum.Enum):
    """What a request may do."""

    READ = "read"  #: See every page and JSON.
    ACT = "act"  #: See, and retry, cancel, pause, resume, remove, run now.


def derive(token: str, purpose: str, role: Role | None = None) -> bytes:
    """The key of one purpose (and role), derived from a token: HMAC-SHA256 keyed by the
    token of the label `taskcron PURPOSE [ROLE] v1`. The only use of a token as a key."""
    label = " ".join(["taskcron", purpose, *([role.value] if role else []), "v1"])
    return hmac.new(token.encode(), label.encode(), hashlib.sha256).digest()


def sign(key: bytes, purpose: str, *fields: str) -> str:
    """HMAC-SHA256 of `purpose NUL field NUL ...` keyed by `key`, in hex."""
    message = "\0".join((purpose, *fields)).encode("utf-8", "surrogatepass")
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def owner_signature(token: str, owner: str) -> str:
    """The `sig` of the owner link of `owner`, made with the dashboard's token."""
    return sign(derive(token, OWNER_LINK), OWNER_LINK, owner)


def owner_link(token: str | None, owner: str) -> str:
    """The path of `owner`'s read-only page, signed: `/owner/OWNER?sig=SIGNATURE`; a
    `ConfigError` when `token` (the dashboard's) is missing or unfit."""
    from urllib.parse import quote

    from taskcron import configfile, errors

    configfile.check_tokens(token, None)
    if token is None:
        raise errors.ConfigError(
            "an owner link is signed with the dashboard's token, and none is configured:"
            f" set web.token in the config or {configfile.ENV_WEB_TOKEN}"
        )
    return f"/owner/{quote(owner, safe='')}?sig={owner_signature(token, owner)}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Who:
    """An authenticated request: its role, and its session nonce when it came by cookie."""

    role: Role
    nonce: str | None = None  #: None for a Bearer token: no CSRF token needed.

    @property
    def may_act(self) -> bool:
        """Whether it may change tasks."""
        return self.role is Role.ACT

    @property
    def principal(self) -> str:
        """Whom the request's open streams are counted against: its session, else its token."""
        return f"bearer:{self.role.value}" if self.nonce is None else f"session:{self.nonce}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Keys:
    """The dashboard's tokens, and how long a session lasts."""

    token: str
    read_token: str | None = None
    session_ttl: timedelta = SESSION_TTL

    def _token(self, role: Role) -> str | None:
        return self.token if role is Role.ACT else self.read_token

    def role_of(self, token: str) -> Role | None:
        """The role a token gives, or None when it is neither token."""
        for role in Role:
            key = self._token(role)
            if key is not None and _same(token, key):
                return role
        return None

    def _mac(self, role: Role, purpose: str, *fields: str) -> str | None:
        token = self._token(role)
        if token is None:
            return None
        return sign(derive(token, purpose, role), purpose, role.value, *fields)

    def new_session(self, role: Role, now: datetime) -> str:
        """A fresh cookie value for `role`, valid for `session_ttl` from `now`."""
        nonce = secrets.token_urlsafe(18)
        expires = str(int((now + self.session_ttl).timestamp()))
        return f"{role.value}.{nonce}.{expires}.{self._mac(role, SESSION, nonce, expires)}"

    def session(self, value: str, now: datetime) -> Who | None:
        """Who a cookie value stands for at `now`, or None when it is not a valid session
        (malformed, signed with another key, expired, or outliving `session_ttl`)."""
        parts = value.split(".")
        if len(parts) != 4:
            return None
        role_name, nonce, expires, mac = parts
        try:
            role = Role(role_name)
        except ValueError:
            return None
        expected = self._mac(role, SESSION, nonce, expires)
        if not nonce or expected is None or not _same(mac, expected):
            return None
        if not expires.isascii() or not expires.isdigit():
            return None
        left = int(expires) - now.timestamp()
        if not 0 < left <= self.session_ttl.total_seconds():
            return None
        return Who(role=role, nonce=nonce)

    def csrf(self, who: Who) -> str:
        """The CSRF token of a cookie session ("" for a Bearer request, which needs none)."""
        if who.nonce is None:
            return ""
        return self._mac(who.role, CSRF, who.nonce) or ""

    def csrf_ok(self, who: Who, sent: str | None) -> bool:
        """Whether a request may act without a forged form: Bearer, or the right CSRF token."""
        if who.nonce is None:
            return True
        expected = self.csrf(who)
        return bool(expected) and sent is not None and _same(sent, expected)

    def owner_ok(self, owner: str, signature: str | None) -> bool:
        """Whether `signature` is the `sig` of the owner link of `owner`."""
        if not signature:
            return False
        return _same(signature, owner_signature(self.token, owner))


def _same(sent: str, expected: str) -> bool:
    """Whether two texts are equal, in constant time. As bytes: `compare_digest` refuses
    strings with non-ASCII characters, and a request may send any."""
    return hmac.compare_digest(
        sent.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


def same_text(sent: str, expected: str) -> bool:
    """Whether a token sent is the one expected, compared in constant time."""
    return _same(sent, expected)


def bearer(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer TOKEN` header, if that is what it is."""
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None
