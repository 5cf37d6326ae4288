"""OIDC provider state: registered apps (clients), authorization codes, tokens, and the back-channel
logout outbox. Codes and tokens are stored as SHA-256 hashes; client secrets as SHA-256 of a
256-bit random value (a slow hash adds nothing for secrets no one chose)."""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import datetime

from authlib.integrations.sqla_oauth2 import OAuth2AuthorizationCodeMixin, OAuth2ClientMixin, OAuth2TokenMixin
from sqlalchemy import Column, DateTime, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from common.clock import utcnow
from extensions import db

CODE_LIFETIME = 300


def secret_hash(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


class ClientRules:
    """What the bridge decides about an app, the same on the model and on the token endpoint's
    read-only ClientRecord (Authlib's OAuth2ClientMixin reads the other columns for both)."""

    @property
    def is_public(self) -> bool:
        return self.token_endpoint_auth_method == "none"

    @property
    def initiate_login_uri(self) -> str | None:
        return self.client_metadata.get("initiate_login_uri")

    @property
    def backchannel_logout_uri(self) -> str | None:
        return self.client_metadata.get("backchannel_logout_uri")

    @property
    def post_logout_redirect_uris(self) -> list[str]:
        return self.client_metadata.get("post_logout_redirect_uris", [])

    def check_client_secret(self, client_secret: str) -> bool:
        return bool(self.client_secret) and hmac.compare_digest(self.client_secret, secret_hash(client_secret))

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if endpoint == "token":
            if self.is_public:
                return method == "none"
            # Confidential apps may use either standard method (any framework's client works).
            return method in ("client_secret_basic", "client_secret_post")
        return True


class OidcClient(ClientRules, OAuth2ClientMixin, db.Model):
    __tablename__ = "oidc_client"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client_id = Column(String(48), unique=True, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ClientRecord(ClientRules, OAuth2ClientMixin):
    """An app as the token and authorize endpoints read it: a plain object over a Core row (a
    quarter of an ORM load), never saved. Authlib's mixin methods work on it unchanged."""

    def __init__(self, row):
        self.id, self.client_id, self.client_secret, self._client_metadata = row


CLIENT_RECORD_COLUMNS = tuple(OidcClient.__table__.c[name] for name in ("id", "client_id", "client_secret",
                                                                        "client_metadata"))


class CodeRules:
    def is_expired(self) -> bool:
        return self.created_at_ts + CODE_LIFETIME < time.time()


class OidcAuthorizationCode(CodeRules, OAuth2AuthorizationCodeMixin, db.Model):
    __tablename__ = "oidc_authorization_code"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    code = Column(String(64), unique=True, nullable=False)  # SHA-256 of the code
    session_hash: Mapped[str] = mapped_column(String(64), index=True)
    created_at_ts: Mapped[int] = mapped_column(Integer, default=lambda: int(time.time()))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    # An app's nonce is checked for reuse at every authorization request that carries one.
    __table_args__ = (Index("ix_oidc_authorization_code_nonce", "client_id", "nonce"),)


class CodeRecord(CodeRules, OAuth2AuthorizationCodeMixin):
    """A code as the token endpoint spends it: a plain object over the row its UPDATE returned."""

    def __init__(self, row):
        self.__dict__.update(row._mapping)


class OidcToken(OAuth2TokenMixin, db.Model):
    __tablename__ = "oidc_token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    access_token = Column(String(64), unique=True, nullable=False)  # SHA-256
    refresh_token = Column(String(64), index=True)  # SHA-256
    session_hash: Mapped[str] = mapped_column(String(64), index=True)
    # The code this token came from: a replayed code revokes what the first use issued.
    code_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    refresh_expires_at: Mapped[int | None] = mapped_column(Integer)

    def revoke(self) -> None:
        now = int(time.time())
        self.access_token_revoked_at = self.access_token_revoked_at or now
        self.refresh_token_revoked_at = self.refresh_token_revoked_at or now

    def is_refresh_token_valid(self) -> bool:
        return not self.refresh_token_revoked_at and (self.refresh_expires_at or 0) > time.time()


class BackchannelLogout(db.Model):
    """Outbox: one logout token to deliver to one app, retried until it is accepted."""

    __tablename__ = "oidc_backchannel_logout"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client_id: Mapped[str] = mapped_column(String(48))
    uri: Mapped[str] = mapped_column(Text)
    # The issuer the app knows us by, fixed when queued (delivery runs outside any request).
    issuer: Mapped[str] = mapped_column(String(255))
    sub: Mapped[str] = mapped_column(String(64))
    sid: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    given_up_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(String(255))

    __table_args__ = (Index("ix_oidc_backchannel_due", "delivered_at", "given_up_at", "next_attempt_at"),)
