"""The ID-token signing keys as each process holds them: a key another process made is signing and
published once the short cache expires, and a key already known is not imported again (importing a
3072-bit private key costs 0.1 s of CPU, twice every 30 s in every process before)."""

from __future__ import annotations

import pytest
from joserfc.jwk import RSAKey

from extensions import db
from keys import signing
from keys.models import SigningKey


@pytest.fixture
def imports(app_ctx, monkeypatch):
    """The kids imported, in order; keys of 2048 bits, to keep the test fast."""
    seen = []
    real = RSAKey.import_key

    def counting(value, parameters=None, **kw):
        seen.append(parameters["kid"])
        return real(value, parameters, **kw)

    monkeypatch.setattr(RSAKey, "import_key", counting)
    monkeypatch.setattr(signing.create_signing_key, "__defaults__", (2048,))
    signing.invalidate_cache()
    yield seen
    signing.invalidate_cache()


def test_each_key_is_imported_once_and_another_process_rotation_is_seen(imports, monkeypatch):
    monkeypatch.setattr(signing, "_CACHE_SECONDS", 0)  # every call re-reads the rows
    first = signing.active_signing_key(3600)
    assert imports == [first.kid]
    assert signing.active_signing_key(3600) is first
    assert imports == [first.kid]

    # Another process rotates: it retires this key and makes a new one; this process's cache is not told.
    db.session.execute(db.update(SigningKey).values(retired_at=db.func.now()))
    newer = signing.create_signing_key()
    db.session.commit()
    active = signing.active_signing_key(3600)
    assert active.kid == newer.kid != first.kid
    assert {k["kid"] for k in signing.public_jwks(3600)["keys"]} == {first.kid, newer.kid}
    assert imports == [first.kid, newer.kid]
