"""AR staff accounts: users with argon2id password hashes, server-side sessions, login throttling.

Sessions live in the database, not only in a cookie: the cookie carries a random session id (signed by the
web layer), and the table keeps its SHA-256, so logging out, disabling a user or changing a role ends the
user's sessions at once, on every worker. Login attempts are counted in the database too, so throttling holds
across workers: each attempt is reserved before its password is checked, by one atomic upsert that returns
the count (portal/store/ratelimits.py), so concurrent guesses cannot all pass a check made before any of them was
counted (fifteen at once were all checked when failures were counted after the check).

Nothing here imports Flask; `portal staff ...` and `webhook/staff*.py` both call these functions.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection

from portal.core.errors import PortalError
from portal.store.database import Store
from portal.store.ratelimits import DatabaseRateLimitStore
from portal.store.staff import staff_sessions, staff_users

# viewer: reads and exports; collector: also works customers (touches, holds; portal/collect/access.py) and
# sees their own portfolio first; manager: also sees every collector's work and reassigns; admin: also resolves
# disputes and manages staff.
ROLES = ("viewer", "collector", "manager", "admin")
MIN_PASSWORD = 12
MAX_PASSWORD = 1024  # argon2 takes any length; a cap keeps a hostile form from costing us memory
SESSION_IDLE = timedelta(hours=4)
SESSION_MAX = timedelta(hours=12)
TOUCH_EVERY = timedelta(minutes=1)  # how often a session's last_seen_at is written (not on every request)
# Failed logins allowed per window: per email from one client address (someone guessing one account's
# password), per client address (someone trying many accounts), and per email from everywhere (a guesser
# spread over many addresses). Past any of them, even the right password is refused until the window has
# moved on, so a guesser learns nothing. The per-email limit counts one address at a time, so a stranger who
# knows an admin's email cannot lock the admin out from elsewhere with five wrong passwords; the
# everywhere-limit is high for the same reason. A window starts with a key's first attempt and lasts
# FAILURE_WINDOW; a right password gives its attempt back (and clears its email-and-address count).
FAILURE_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_EMAIL = 5  # per email and client address
MAX_FAILURES_PER_IP = 20
MAX_FAILURES_PER_EMAIL_ANYWHERE = 100
EMAIL = re.compile(r"^[^@\s<>\"',;]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")

# argon2-cffi's defaults are the RFC 9106 "low memory" profile (argon2id, 64 MiB, 3 passes).
_hasher = PasswordHasher()
# Verified when the email is unknown, so a wrong address costs the same time as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))

class StaffError(PortalError):
    """A refused staff-account change: bad email, weak password, unknown user, last admin."""


class LoginThrottled(PortalError):
    def __init__(self, retry_after: int):
        super().__init__(f"too many failed logins; try again in {retry_after} seconds")
        self.retry_after = retry_after


@dataclass(frozen=True)
class StaffUser:
    user_id: int
    email: str
    role: str
    active: bool
    created_at: datetime
    last_login_at: datetime | None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class Session:
    user: StaffUser
    csrf_token: str
    expires_at: datetime


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    if len(email) > 320 or not EMAIL.match(email):
        raise StaffError(f"{email!r} is not an email address")
    return email


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise StaffError(f"the password must have at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise StaffError(f"the password must have at most {MAX_PASSWORD} characters")


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise StaffError(f"role {role!r}: use one of {', '.join(ROLES)}")


def _user(row: object) -> StaffUser:
    return StaffUser(row.user_id, row.email, row.role, row.active, row.created_at, row.last_login_at)  # type: ignore[attr-defined]


_USER_COLUMNS = (staff_users.c.user_id, staff_users.c.email, staff_users.c.role, staff_users.c.active,
                 staff_users.c.created_at, staff_users.c.last_login_at)


# --- accounts ----------------------------------------------------------------------------------------------


def add_user(store: Store, email: str, password: str, role: str = "viewer", now: datetime | None = None) -> StaffUser:
    email = normalise_email(email)
    check_password(password)
    _check_role(role)
    now = now or datetime.now(UTC)
    with store.begin() as conn:
        if conn.execute(select(staff_users.c.user_id).where(staff_users.c.email == email)).first():
            raise StaffError(f"{email} is already a staff user")
        conn.execute(insert(staff_users).values(email=email, password_hash=_hasher.hash(password), role=role,
                                                active=True, created_at=now, updated_at=now))
        return _user(conn.execute(select(*_USER_COLUMNS).where(staff_users.c.email == email)).one())


def list_users(store: Store) -> list[StaffUser]:
    with store.begin() as conn:
        return [_user(r) for r in conn.execute(select(*_USER_COLUMNS).order_by(staff_users.c.email))]


def get_user(store: Store, email: str) -> StaffUser | None:
    with store.begin() as conn:
        row = conn.execute(select(*_USER_COLUMNS).where(staff_users.c.email == email.strip().lower())).first()
    return _user(row) if row else None


def _active_admins(conn: Connection, excluding: int) -> int:
    return conn.execute(select(func.count()).select_from(staff_users).where(
        staff_users.c.role == "admin", staff_users.c.active.is_(True), staff_users.c.user_id != excluding)).scalar_one()


def update_user(store: Store, email: str, *, role: str | None = None, active: bool | None = None,
                password: str | None = None, now: datetime | None = None) -> StaffUser:
    """Change a user's role, activity or password. Any change ends the user's sessions: a demoted or disabled
    user is out at once, and a new password logs out whoever had the old one. The last active admin cannot
    be demoted or disabled (nobody could manage staff any more but from the command line)."""
    if role is not None:
        _check_role(role)
    if password is not None:
        check_password(password)
    now = now or datetime.now(UTC)
    with store.begin() as conn:
        row = conn.execute(select(*_USER_COLUMNS).where(staff_users.c.email == email.strip().lower())
                           .with_for_update()).first()
        if row is None:
            raise StaffError(f"{email} is not a staff user")
        losing_admin = row.role == "admin" and row.active and (role not in (None, "admin") or active is False)
        if losing_admin and _active_admins(conn, row.user_id) == 0:
            raise StaffError(f"{row.email} is the last active admin; make another admin first")
        values: dict[str, object] = {"updated_at": now}
        if role is not None:
            values["role"] = role
        if active is not None:
            values["active"] = active
        if password is not None:
            values["password_hash"] = _hasher.hash(password)
        conn.execute(update(staff_users).where(staff_users.c.user_id == row.user_id).values(**values))
        conn.execute(delete(staff_sessions).where(staff_sessions.c.user_id == row.user_id))
        return _user(conn.execute(select(*_USER_COLUMNS).where(staff_users.c.user_id == row.user_id)).one())


# --- logging in ----------------------------------------------------------------------------------------------


def _throttle_keys(email: str, ip: str) -> list[tuple[str, int]]:
    """The counters one attempt reserves, with their limits. Hashed: an email of 320 characters must not be
    cut to a prefix it shares with another (the counters' keys hold 200)."""

    def key(kind: str, value: str) -> str:
        return f"staff-login:{kind}:{hashlib.sha256(value.encode()).hexdigest()[:40]}"

    return [(key("email-ip", f"{email}|{ip}"), MAX_FAILURES_PER_EMAIL), (key("ip", ip), MAX_FAILURES_PER_IP),
            (key("email", email), MAX_FAILURES_PER_EMAIL_ANYWHERE)]


def _reserve(counters: DatabaseRateLimitStore, keys: list[tuple[str, int]], now: float) -> None:
    """Count this attempt on every key, one atomic statement each; LoginThrottled (the attempt given back on
    the keys still under their limit, so a refused attempt costs nothing) when one is over its limit."""
    window = int(FAILURE_WINDOW.total_seconds())
    taken: list[str] = []
    for key, limit in keys:
        hits, reset = counters.hit(key, window, now)
        if hits > limit:
            for earlier in taken:
                counters.give_back(earlier, now)
            raise LoginThrottled(max(1, math.ceil(reset)))
        taken.append(key)


def authenticate(store: Store, email: str, password: str, ip: str, now: datetime | None = None) -> StaffUser | None:
    """The user when `email` and `password` match an active user; None otherwise (and the failure is counted).

    Raises LoginThrottled before checking anything when the email or the client address failed too often
    lately: the check itself is not run, so a throttled guesser cannot tell a right password from a wrong one.
    The attempt is counted before the check and stays counted unless the password was right.
    """
    now = now or datetime.now(UTC)
    email = email.strip().lower()[:320]
    keys = _throttle_keys(email, ip[:64])
    counters = DatabaseRateLimitStore(store)
    _reserve(counters, keys, now.timestamp())
    with store.begin() as conn:
        row = conn.execute(select(*_USER_COLUMNS, staff_users.c.password_hash)
                           .where(staff_users.c.email == email)).first()
    ok = _verify(row.password_hash if row else _DUMMY_HASH, password[:MAX_PASSWORD])
    if not ok or row is None or not row.active:
        return None
    with store.begin() as conn:
        values: dict[str, object] = {"last_login_at": now}
        if _hasher.check_needs_rehash(row.password_hash):
            values["password_hash"] = _hasher.hash(password)
        conn.execute(update(staff_users).where(staff_users.c.user_id == row.user_id).values(**values))
    counters.clear(keys[0][0])
    for key, _ in keys[1:]:
        counters.give_back(key, now.timestamp())
    return _user(row)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


# --- sessions ------------------------------------------------------------------------------------------------


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def start_session(store: Store, user: StaffUser, now: datetime | None = None) -> str:
    """A new session for `user`; returns the id for the cookie (only its hash is stored)."""
    now = now or datetime.now(UTC)
    session_id = secrets.token_urlsafe(32)
    with store.begin() as conn:
        conn.execute(delete(staff_sessions).where(staff_sessions.c.expires_at < now))
        conn.execute(insert(staff_sessions).values(
            session_hash=_digest(session_id), user_id=user.user_id, csrf_token=secrets.token_urlsafe(32),
            created_at=now, last_seen_at=now, expires_at=now + SESSION_MAX))
    return session_id


def load_session(store: Store, session_id: str, now: datetime | None = None) -> Session | None:
    """The live session for a cookie's id, or None (unknown, expired, idle too long, or its user disabled)."""
    now = now or datetime.now(UTC)
    digest = _digest(session_id)
    with store.begin() as conn:
        row = conn.execute(
            select(*_USER_COLUMNS, staff_sessions.c.csrf_token, staff_sessions.c.last_seen_at,
                   staff_sessions.c.expires_at)
            .select_from(staff_sessions.join(staff_users, staff_users.c.user_id == staff_sessions.c.user_id))
            .where(staff_sessions.c.session_hash == digest)).first()
        if row is None:
            return None
        if not row.active or row.expires_at <= now or row.last_seen_at + SESSION_IDLE <= now:
            conn.execute(delete(staff_sessions).where(staff_sessions.c.session_hash == digest))
            return None
        if now - row.last_seen_at >= TOUCH_EVERY:
            conn.execute(update(staff_sessions).where(staff_sessions.c.session_hash == digest)
                         .values(last_seen_at=now))
    return Session(_user(row), row.csrf_token, row.expires_at)


def end_session(store: Store, session_id: str) -> None:
    with store.begin() as conn:
        conn.execute(delete(staff_sessions).where(staff_sessions.c.session_hash == _digest(session_id)))
