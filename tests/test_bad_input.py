"""Bad input and faults: the right KooGallery code, HTTP 200 JSON, never a 500, nothing stored."""

from __future__ import annotations

import json
import time

import pytest
import sqlalchemy
from sqlalchemy import event

from extensions import db
from tenants.models import SeenNonce, SyncCall, Tenant
from tests import factories as f
from tests.helpers import BASIC_KEY, KIT_KEY
from tests.koogallery import KooGallery, basic_query, kit_headers

KIT_PATH = "/produce/produceAPI/v2/tenantSync"


def answer(response) -> tuple[str, str]:
    assert response.status_code == 200, response.data[:300]
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert len(body["resultCode"]) == 6
    return body["resultCode"], body["resultMsg"]


def nothing_stored(app):
    with app.app_context():
        assert db.session.execute(db.select(Tenant)).first() is None
        assert db.session.execute(db.select(SeenNonce)).first() is None


def post_raw(client, raw: bytes, *, sign_body=None, content_type="application/json", **sign):
    headers = kit_headers(KIT_KEY, sign_body if sign_body is not None else {}, raw=raw.decode("utf-8", "replace"),
                          **sign)
    headers["Content-Type"] = content_type
    return client.post(KIT_PATH, data=raw, headers=headers)


@pytest.mark.parametrize("raw", [
    b'{"tenantId": "t1", ',                 # truncated
    b"[1, 2, 3]",                           # not an object
    b'"just a string"',
    b"",                                    # empty
    b'{"tenantId": NaN}',                   # not JSON
    b'{"tenantId": "\xff\xfe"}',            # not UTF-8
])
def test_malformed_json_is_000002(app, client, raw):
    assert answer(post_raw(client, raw))[0] == "000002"
    nothing_stored(app)


def test_conflicting_duplicate_keys_are_refused(app, client):
    raw = json.dumps(f.tenant_sync())[:-1] + ', "tenantId": "someone-else"}'
    code, message = answer(post_raw(client, raw.encode()))
    assert code == "000002" and "duplicate key" in message
    nothing_stored(app)


@pytest.mark.parametrize("depth", [33, 5000])
def test_deeply_nested_json_is_refused(app, client, depth):
    raw = ('{"tenantId": "t1", "x": ' + "[" * depth + "]" * depth + "}").encode()
    code, message = answer(post_raw(client, raw))
    assert code == "000002" and "nested" in message
    nothing_stored(app)


def test_oversized_body_is_refused(make_app):
    app = make_app(MAX_BODY_BYTES=4096)
    body = f.tenant_sync(name="x" * 5000)
    code, message = answer(KooGallery(app.test_client(), KIT_KEY, BASIC_KEY).kit("tenantSync", body))
    assert code == "000002" and "larger than 4096" in message
    nothing_stored(app)


def test_default_body_limit_is_2_mb(app, client):
    raw = json.dumps(f.tenant_sync(padding="x" * (2 * 1024 * 1024))).encode()
    assert answer(post_raw(client, raw))[0] == "000002"
    nothing_stored(app)


@pytest.mark.parametrize("override", [
    {"flag": 9}, {"flag": "add"}, {"flag": True}, {"tenantId": {"id": 1}}, {"tenantId": ["a"]},
    {"testFlag": 5}, {"timeStamp": "yesterday"}, {"name": None}, {"tenantId": ""}, {"domainName": 42.5},
    {"tenantId": "x" * 65},
])
def test_wrong_types_and_missing_fields_are_000002(app, kg, override):
    code, message = answer(kg.kit("tenantSync", f.tenant_sync(**override)))
    assert code == "000002", message
    nothing_stored(app)


@pytest.mark.parametrize("missing", ["tenantId", "flag", "timeStamp", "domainName", "name", "tenantCode"])
def test_each_mandatory_tenant_field_is_checked(app, kg, missing):
    body = f.tenant_sync()
    del body[missing]
    code, message = answer(kg.kit("tenantSync", body))
    assert code == "000002" and missing in message
    nothing_stored(app)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_other_methods_on_sync_paths_are_000002(app, client, method):
    for path in (KIT_PATH, "/produce"):
        code, message = answer(client.open(path, method=method))
        assert code == "000002" and "POST" in message
    nothing_stored(app)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_wrong_content_type_is_000002(app, client, content_type):
    raw = json.dumps(f.tenant_sync()).encode()
    code, message = answer(post_raw(client, raw, sign_body=f.tenant_sync(), content_type=content_type))
    assert code == "000002" and "Content-Type" in message
    nothing_stored(app)


def test_unknown_kit_interface_is_000002(client):
    assert answer(client.post("/produce/produceAPI/v2/orderSync", json={}))[0] == "000002"


@pytest.mark.parametrize("offset_s", [-61, 61, -3600])
def test_stale_or_future_timestamp_is_000002(app, kg, offset_s):
    ts = int(time.time() * 1000) + offset_s * 1000
    code, message = answer(kg.kit("tenantSync", f.tenant_sync(), timestamp=ts))
    assert code == "000002" and "timestamp" in message
    nothing_stored(app)


def test_timestamp_window_is_configurable(make_app):
    app = make_app(SIGNATURE_WINDOW_SECONDS=300, NONCE_TTL_SECONDS=600)
    kg = KooGallery(app.test_client(), KIT_KEY, BASIC_KEY)
    assert answer(kg.kit("tenantSync", f.tenant_sync(), timestamp=int(time.time() * 1000) - 120_000))[0] == "000000"


def test_replayed_nonce_gets_the_first_answer_for_the_same_body_and_is_refused_for_another(app, client):
    body = f.tenant_sync()
    headers = kit_headers(KIT_KEY, body)
    first = client.post(KIT_PATH, json=body, headers=headers).get_json()
    assert first["resultCode"] == "000000"
    assert client.post(KIT_PATH, json=body, headers=headers).get_json() == first  # answer lost, re-sent
    other = {**body, "name": "another body"}
    code, message = answer(client.post(KIT_PATH, json=other, headers=kit_headers(KIT_KEY, other,
                                                                                   nonce=headers["x-nonce"])))
    assert code == "000001" and "nonce" in message


def test_nonce_seen_on_a_kit_endpoint_is_refused_on_the_basic_endpoint(app, client, kg):
    nonce = "C0FFEE" * 10
    assert answer(kg.kit("tenantSync", f.tenant_sync(), nonce=nonce))[0] == "000000"
    assert answer(kg.basic(f.new_instance(), nonce=nonce))[0] == "000001"


def test_a_refused_call_does_not_burn_its_nonce(app, kg):
    nonce = "AB" * 32
    assert answer(kg.kit("tenantSync", f.tenant_sync(domainName="ftp://x"), nonce=nonce))[0] == "000002"
    assert answer(kg.kit("tenantSync", f.tenant_sync(), nonce=nonce))[0] == "000000"


def test_tampered_body_is_000001(app, client):
    signed = f.tenant_sync()
    tampered = f.tenant_sync(domainName="https://evil.example.com")
    assert answer(client.post(KIT_PATH, json=tampered, headers=kit_headers(KIT_KEY, signed)))[0] == "000001"
    nothing_stored(app)


def test_tampered_basic_body_is_000001(app, client):
    query = basic_query(BASIC_KEY, f.new_instance())
    response = client.post("/produce", query_string=query, json=f.new_instance(orderId="other"))
    assert answer(response)[0] == "000001"


def test_wrong_key_is_000001(app, client):
    kg = KooGallery(client, "not-the-kit-key", "not-the-basic-key")
    assert answer(kg.kit("tenantSync", f.tenant_sync()))[0] == "000001"
    assert answer(kg.basic(f.new_instance()))[0] == "000001"
    nothing_stored(app)


def test_previous_keys_are_accepted_during_rotation(make_app):
    app = make_app(KIT_ACCESS_KEY="new-kit-key", KIT_ACCESS_KEY_FALLBACKS="old-kit-key",
                   BASIC_ACCESS_KEY="new-basic-key", BASIC_ACCESS_KEY_FALLBACKS=["old-basic-key"])
    old = KooGallery(app.test_client(), "old-kit-key", "old-basic-key")
    assert answer(old.kit("tenantSync", f.tenant_sync()))[0] == "000000"
    assert answer(old.basic(f.new_instance()))[0] == "000000"
    with app.app_context():
        assert db.session.execute(db.select(SyncCall.signature_form)).scalars().all() == [
            "fallback-1/canonical", "fallback-1/canonical"]


def test_database_failure_mid_call_answers_000005_and_leaves_nothing(app, kg):
    with app.app_context():
        engine = db.engine

    def fail_on_link_insert(conn, cursor, statement, params, context, executemany):
        if statement.startswith("INSERT INTO kg_tenant_instance"):
            raise sqlalchemy.exc.OperationalError(statement, params, Exception("server closed the connection"))

    event.listen(engine, "before_cursor_execute", fail_on_link_insert)
    try:
        nonce = "DEADBEEF" * 8
        code, message = answer(kg.kit("tenantSync", f.tenant_sync(), nonce=nonce))
        assert code == "000005" and "retry" in message
        nothing_stored(app)  # the tenant row inserted before the failure was rolled back
    finally:
        event.remove(engine, "before_cursor_execute", fail_on_link_insert)
    # KooGallery's retry repairs it (a fresh signature; the failed call's nonce was not kept).
    assert answer(kg.kit("tenantSync", f.tenant_sync(), nonce=nonce))[0] == "000000"


def test_database_down_answers_000005_quickly(make_app):
    app = make_app(DATABASE_URL="postgresql+psycopg://postgres@127.0.0.1:9/none?connect_timeout=2")
    kg = KooGallery(app.test_client(), KIT_KEY, BASIC_KEY)
    started = time.monotonic()
    assert answer(kg.kit("tenantSync", f.tenant_sync()))[0] == "000005"
    assert answer(kg.basic(f.new_instance()))[0] == "000005"
    assert time.monotonic() - started < 10


def test_failure_is_audited_with_reason(app, kg):
    kg.kit("tenantSync", f.tenant_sync(), timestamp=1)
    with app.app_context():
        [call] = db.session.execute(db.select(SyncCall)).scalars().all()
    assert call.result_code == "000002" and "timestamp" in call.result_msg and call.signature_form is None
