"""Operator accounts: passwords (scrypt), optional TOTP (RFC 6238), and signing in with a lockout
counted in the database, so every bridge process sees the same failures."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pyotp
from flask import current_app
from pyotp.exceptions import OTPVerificationError
from werkzeug.security import check_password_hash, generate_password_hash

from admin.models import Operator, OperatorSession, SignInFailure
from common.clock import utcnow
from extensions import db
from keys import keyring

USERNAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._@-]{0,63}")
MIN_PASSWORD_CHARS = 12
MAX_PASSWORD_CHARS = 1024  # a hash of megabytes of input is work for nothing
MAX_FAILURES = 5  # per account and client: a stranger's guesses elsewhere never lock the operator out
CLIENT_MAX_FAILURES = 20  # per client, whatever the account: one address trying many names
FAILURE_WINDOW = timedelta(minutes=15)
LOCKOUT = timedelta(minutes=15)
TOTP_VALID_WINDOW = 1  # the step before and after the current one: phones' clocks drift


class AccountError(Exception):
    """A CLI request that cannot be done; the message says why."""


class SignInError(Exception):
    """A refused sign-in. `reason`: bad_credentials | bad_code | locked | code_expired."""

    def __init__(self, reason: str, locked_until: datetime | None = None):
        super().__init__(reason)
        self.reason = reason
        self.locked_until = locked_until


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# --- accounts -------------------------------------------------------------------------------------


def normalise_username(raw: str | None) -> str:
    return (raw or "").strip().lower()[:64]


def check_username(username: str) -> str:
    if not USERNAME_PATTERN.fullmatch(username):
        raise AccountError("a username is 1-64 characters: lower-case letters, digits and . _ @ -, "
                           "starting with a letter or digit")
    return username


def check_password_policy(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise AccountError(f"the password must have at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise AccountError(f"the password must have at most {MAX_PASSWORD_CHARS} characters")
    return password


def hash_password(password: str) -> str:
    return generate_password_hash(password, method=current_app.config.get("ADMIN_PASSWORD_HASH_METHOD", "scrypt"))


def find_operator(username: str) -> Operator | None:
    return db.session.execute(db.select(Operator).filter_by(username=username)).scalar_one_or_none()


def get_operator(username: str) -> Operator:
    operator = find_operator(normalise_username(username))
    if operator is None:
        raise AccountError(f"no operator named {username!r}")
    return operator


def list_operators() -> list[Operator]:
    return list(db.session.execute(db.select(Operator).order_by(Operator.username)).scalars())


def create_operator(username: str, password: str, *, with_totp: bool) -> tuple[Operator, str | None]:
    """The new operator and, with TOTP, the otpauth:// URI to enrol (shown once, never stored)."""
    username = check_username(normalise_username(username))
    check_password_policy(password)
    if find_operator(username) is not None:
        raise AccountError(f"operator {username!r} exists already")
    operator = Operator(username=username, password_hash=hash_password(password))
    db.session.add(operator)
    uri = enrol_totp(operator) if with_totp else None
    return operator, uri


def enrol_totp(operator: Operator) -> str:
    secret = pyotp.random_base32()
    operator.totp_secret_enc = keyring().data.encrypt(secret)
    operator.totp_last_step = None
    issuer = current_app.config.get("ADMIN_TOTP_ISSUER", "SSO Bridge")
    return pyotp.TOTP(secret).provisioning_uri(name=operator.username, issuer_name=issuer)


def reset_password(operator: Operator, password: str, *, with_totp: bool) -> str | None:
    """A new password (and optionally a new TOTP secret); ends the operator's sessions."""
    check_password_policy(password)
    operator.password_hash = hash_password(password)
    operator.password_changed_at = utcnow()
    end_operator_sessions(operator, "password_reset")
    return enrol_totp(operator) if with_totp else None


def disable_operator(operator: Operator) -> None:
    operator.disabled_at = operator.disabled_at or utcnow()
    end_operator_sessions(operator, "disabled")


def enable_operator(operator: Operator) -> None:
    operator.disabled_at = None


def end_operator_sessions(operator: Operator, reason: str) -> int:
    return db.session.execute(
        db.update(OperatorSession).where(OperatorSession.operator_id == operator.id, OperatorSession.ended_at.is_(None))
        .values(ended_at=utcnow(), end_reason=reason)).rowcount


# --- lockout --------------------------------------------------------------------------------------


def lockout_until(failures: list[datetime], now: datetime, limit: int = MAX_FAILURES) -> datetime | None:
    """Until when a key (an account from one client, or a client address) is locked, given its
    recent failures: `limit` within FAILURE_WINDOW lock it for LOCKOUT from the last of them.
    Attempts are refused, not counted, while locked, so that last failure is the one that locked it."""
    times = sorted(_aware(t) for t in failures)
    for i in range(len(times) - limit, -1, -1):  # newest qualifying run first
        last = times[i + limit - 1]
        if last - times[i] <= FAILURE_WINDOW and last + LOCKOUT > now:
            return last + LOCKOUT
    return None


def _recent_failures(now: datetime, **key) -> list[datetime]:
    since = now - FAILURE_WINDOW - LOCKOUT
    return list(db.session.execute(
        db.select(SignInFailure.created_at).filter_by(**key).where(SignInFailure.created_at > since)).scalars())


# What is counted: the account from this client, and this client whatever the account. Never the
# account alone: whoever knows an operator's name could otherwise keep that operator out.
def _limits(username: str, remote_addr: str) -> list[tuple[dict, int]]:
    return [({"username": username, "remote_addr": remote_addr}, MAX_FAILURES),
            ({"remote_addr": remote_addr}, CLIENT_MAX_FAILURES)]


def _locked_until(username: str, remote_addr: str, now: datetime) -> datetime | None:
    ends = [lockout_until(_recent_failures(now, **key), now, limit) for key, limit in _limits(username, remote_addr)]
    return max((e for e in ends if e is not None), default=None)


def _begin_attempt(username: str, remote_addr: str) -> SignInFailure:
    """Count the attempt as a failure before checking anything, committed, so guesses made in
    parallel (other threads, other processes) see each other; a success takes it back."""
    now = utcnow()
    locked = _locked_until(username, remote_addr, now)
    if locked:
        raise SignInError("locked", locked)
    # Older rows can no longer lock anybody: forgetting them keeps the table small.
    db.session.execute(db.delete(SignInFailure).where(SignInFailure.created_at <= now - FAILURE_WINDOW - LOCKOUT))
    attempt = SignInFailure(username=username, remote_addr=remote_addr, created_at=now)
    db.session.add(attempt)
    db.session.commit()
    for key, limit in _limits(username, remote_addr):
        in_window = db.session.scalar(db.select(db.func.count()).select_from(SignInFailure).filter_by(**key)
                                      .where(SignInFailure.created_at > now - FAILURE_WINDOW))
        if in_window > limit:  # parallel attempts got in first: this one is over the limit
            db.session.delete(attempt)
            db.session.commit()
            raise SignInError("locked", now + LOCKOUT)
    return attempt


def _forgive(attempt: SignInFailure) -> None:
    db.session.delete(attempt)


def _reset_failures(username: str, remote_addr: str) -> None:
    """A success forgets this account's failures from this client, not a stranger's elsewhere."""
    db.session.execute(db.delete(SignInFailure).where(
        (SignInFailure.username == username) & (SignInFailure.remote_addr == remote_addr)))


def unlock(username: str) -> int:
    """`flask admin unlock`: forget every failed attempt at this account, from any client."""
    return db.session.execute(db.delete(SignInFailure).where(
        SignInFailure.username == normalise_username(username))).rowcount or 0


# --- signing in -----------------------------------------------------------------------------------

_dummy_hashes: dict[str, str] = {}


def _dummy_hash() -> str:
    """A hash to check against when the username is unknown, so both answers take as long."""
    method = current_app.config.get("ADMIN_PASSWORD_HASH_METHOD", "scrypt")
    if method not in _dummy_hashes:
        _dummy_hashes[method] = generate_password_hash("not-a-password-of-anyone", method=method)
    return _dummy_hashes[method]


def check_password(username: str, password: str, remote_addr: str) -> Operator:
    """The first step. Returns the operator; if they have TOTP, the caller asks for a code next
    and the sign-in is not complete (nor the failures reset) until `check_code`."""
    username = normalise_username(username)
    attempt = _begin_attempt(username, remote_addr)
    operator = find_operator(username) if username else None
    if operator is None or operator.disabled_at is not None or len(password) > MAX_PASSWORD_CHARS:
        check_password_hash(_dummy_hash(), password[:MAX_PASSWORD_CHARS])
        raise SignInError("bad_credentials")
    if not check_password_hash(operator.password_hash, password):
        raise SignInError("bad_credentials")
    if operator.has_totp:
        _forgive(attempt)
    else:
        _reset_failures(username, remote_addr)
    db.session.commit()
    return operator


def check_code(operator_id: int, code: str, remote_addr: str) -> Operator:
    """The second step for operators with TOTP: a current code, not used before."""
    operator = db.session.get(Operator, operator_id)
    if operator is None or operator.disabled_at is not None or not operator.has_totp:
        raise SignInError("code_expired")
    _begin_attempt(operator.username, remote_addr)
    # Locked until the commit, so the same code sent twice at once is accepted only once.
    operator = db.session.get(Operator, operator_id, with_for_update=True, populate_existing=True)
    code = re.sub(r"\s", "", code or "")
    secret = keyring().data.decrypt(operator.totp_secret_enc)
    try:
        step = pyotp.TOTP(secret).verify_and_get_timecode(code, for_time=utcnow(), valid_window=TOTP_VALID_WINDOW)
    except OTPVerificationError:
        raise SignInError("bad_code") from None
    if operator.totp_last_step is not None and step <= operator.totp_last_step:
        raise SignInError("bad_code")  # replayed: someone may be watching the operator's screen
    operator.totp_last_step = step
    _reset_failures(operator.username, remote_addr)
    db.session.commit()
    return operator
