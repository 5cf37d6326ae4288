"""A code exchanged twice at the same moment (PostgreSQL: SQLite has no row locks, it runs one
writer at a time): the second request waits for the first; if the first committed, the second is
refused and the tokens of the first use are revoked; if the first failed, the second gets tokens."""

from __future__ import annotations

import threading

from sqlalchemy import text

from extensions import db
from sso.oidc.models import OidcToken, secret_hash
from tests.helpers import postgresql_only, wait_until_a_query_waits_on_a_lock
from tests.oidc_fixtures import authorize, code_from, exchange


class FirstUseInFlight:
    """Another process has spent the code and saved its token, uncommitted; it commits (or rolls
    back) only once this process's exchange waits for the code's row."""

    def __init__(self, app, code: str, session_hash: str, client_id: str, *, commits: bool):
        self.app, self.commits = app, commits
        with app.app_context():
            self.engine = db.engine
        self.other = self.engine.connect()
        self.other.execute(text("UPDATE oidc_authorization_code SET used_at = now() WHERE code = :code"),
                           {"code": secret_hash(code)})
        self.other.execute(db.insert(OidcToken.__table__).values(
            client_id=client_id, access_token=secret_hash("first-use"), scope="openid", expires_in=600,
            session_hash=session_hash, code_hash=secret_hash(code)))
        self.thread = threading.Thread(target=self._finish_once_someone_waits)
        self.thread.start()

    def _finish_once_someone_waits(self):
        wait_until_a_query_waits_on_a_lock(self.engine)
        (self.other.commit if self.commits else self.other.rollback)()
        self.other.close()

    def join(self):
        self.thread.join(timeout=15)


def _first_use_token(app) -> OidcToken | None:
    with app.app_context():
        return db.session.execute(db.select(OidcToken).filter_by(access_token=secret_hash("first-use"))).scalar()


def _session_hash(app, code: str) -> str:
    with app.app_context():
        return db.session.execute(text("SELECT session_hash FROM oidc_authorization_code WHERE code = :code"),
                                  {"code": secret_hash(code)}).scalar()


@postgresql_only
def test_a_code_spent_meanwhile_by_another_request_is_refused_and_revokes_that_use(app, signed_in, app_client):
    client_id, secret = app_client
    code = code_from(authorize(signed_in, client_id))
    first = FirstUseInFlight(app, code, _session_hash(app, code), client_id, commits=True)
    response = exchange(signed_in, client_id, secret, code)
    first.join()
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_grant"
    token = _first_use_token(app)
    assert token.access_token_revoked_at and token.refresh_token_revoked_at


@postgresql_only
def test_a_code_whose_other_exchange_failed_is_still_good(app, signed_in, app_client):
    client_id, secret = app_client
    code = code_from(authorize(signed_in, client_id))
    first = FirstUseInFlight(app, code, _session_hash(app, code), client_id, commits=False)
    response = exchange(signed_in, client_id, secret, code)
    first.join()
    assert response.status_code == 200 and response.get_json()["id_token"]
    assert _first_use_token(app) is None
    assert exchange(signed_in, client_id, secret, code).get_json()["error"] == "invalid_grant"  # now it is spent
