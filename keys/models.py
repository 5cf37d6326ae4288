"""Signing keys for the ID tokens and logout tokens the bridge issues (OIDC provider)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from common.clock import utcnow
from extensions import db
from keys.datakey import register_encrypted_column


class SigningKey(db.Model):
    __tablename__ = "oidc_signing_key"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)  # RFC 7638 thumbprint
    private_pem_enc: Mapped[str] = mapped_column(Text)  # PKCS#8 PEM, encrypted with the data key
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Retired keys sign nothing new but stay in the JWKS until tokens they signed have expired.
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


register_encrypted_column(SigningKey.private_pem_enc)
