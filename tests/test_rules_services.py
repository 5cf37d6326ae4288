"""The marketplace sync services (tenants/services.py) as KooGallery and the bridge's users see them:
the exact resultCode and resultMsg of each answer, the rows stored or left unchanged, newer-then-older
ordering, re-sends, and debug calls (testFlag 1) that change nothing. The services are called
in-process inside one transaction, as the envelope (tenants/views.py) calls them; the envelope
itself (signatures, nonces, the answer of a re-send) is driven through the Flask test client."""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime, timedelta

import pytest

from common.clock import aware
from extensions import db
from keys import keyring
from keys.rsa import OAEP_CANDIDATES, encrypt_client_secret
from tenants import services
from tenants.errors import SyncError
from tenants.models import (
    Department,
    DepartmentList,
    Instance,
    InstanceStatus,
    SeenNonce,
    Tenant,
    TenantApp,
    TenantInstance,
    TenantUser,
)
from tenants.signals import access_changed, centre_moved

T1, T2, T3, T4, T9 = (f"2024010100000000{n}" for n in (1, 2, 3, 4, 9))
IDP = "https://idp.example.com"


@pytest.fixture
def seen(app_ctx):
    """What the services announced to sso: access changes and centre moves, in order."""
    events = []

    def on_access(sender, **kw):
        events.append(("access", kw["tenant_id"], kw["user_names"], kw["reason"]))

    def on_centre(sender, **kw):
        events.append(("centre", kw["tenant_id"]))

    access_changed.connect(on_access)
    centre_moved.connect(on_centre)
    yield events
    access_changed.disconnect(on_access)
    centre_moved.disconnect(on_centre)


def applied(fn, body, **kw) -> services.Outcome:
    """Apply and commit, as the envelope does before it answers 000000."""
    outcome = fn(body, **kw)
    db.session.commit()
    return outcome


def refusal(fn, *args, **kw) -> tuple[str, str]:
    with pytest.raises(SyncError) as err:
        fn(*args, **kw)
    db.session.rollback()
    return err.value.code, err.value.message


def get(model, *key):
    db.session.expire_all()
    return db.session.get(model, key if len(key) > 1 else key[0])


def all_rows(model, *order):
    db.session.expire_all()
    return db.session.execute(db.select(model).order_by(*order)).scalars().all()


# --- replay guard and identical re-sends ---------------------------------------------------------


def test_the_request_fingerprint_is_the_sha256_of_interface_and_body(app_ctx):
    """Stored in kg_nonce beside the nonce: every bridge process (and the next release) must compute
    the same value, or a re-send during a rolling restart is refused as a replay."""
    raw = '{"a":"华"}'.encode()
    assert services.request_hash("kit:tenantSync", raw) == hashlib.sha256(b"kit:tenantSync\n" + raw).hexdigest()
    assert services.request_hash("kit:tenantSync", raw) != services.request_hash("kit:authSync", raw)


def test_a_fresh_nonce_is_claimed_until_its_ttl(app_ctx):
    before = datetime.now(UTC)
    assert services.claim_nonce("n1", "h1", 300) is None
    db.session.commit()
    after = datetime.now(UTC)
    row = get(SeenNonce, "n1")
    assert (row.request_hash, row.answer) == ("h1", None)
    assert before + timedelta(seconds=300) <= aware(row.expires_at) <= after + timedelta(seconds=300)


def test_a_nonce_used_for_this_very_request_gets_its_first_answer_again(app_ctx):
    services.claim_nonce("n1", "h1", 300)
    services.remember_answer("n1", {"resultCode": "000000", "resultMsg": "成功", "instanceId": "i1"})
    db.session.commit()
    resend = services.claim_nonce("n1", "h1", 300)
    assert resend == services.Resend({"resultCode": "000000", "resultMsg": "成功", "instanceId": "i1"})
    # Compact and readable, as the operator finds it in kg_nonce.answer.
    assert get(SeenNonce, "n1").answer == '{"resultCode":"000000","resultMsg":"成功","instanceId":"i1"}'


@pytest.mark.parametrize("fingerprint, answered", [("h2", True), ("h1", False), ("h2", False)])
def test_a_nonce_reused_for_another_request_or_before_its_answer_is_a_replay(app_ctx, fingerprint, answered):
    services.claim_nonce("n1", "h1", 300)
    if answered:
        services.remember_answer("n1", {"resultCode": "000000", "resultMsg": "success"})
    db.session.commit()
    assert refusal(services.claim_nonce, "n1", fingerprint, 300) == (
        "000001", "nonce was already used (replayed request)")


def test_only_expired_nonces_are_purged(app_ctx):
    now = datetime.now(UTC)
    for nonce, expires in (("old", now - timedelta(days=2)), ("edge", now - timedelta(days=1)),
                           ("new", now + timedelta(days=1))):
        db.session.add(SeenNonce(nonce=nonce, expires_at=expires, request_hash="h"))
    db.session.commit()
    assert services.purge_expired_nonces(now - timedelta(days=1)) == 1  # "edge" expires exactly then: kept
    assert services.purge_expired_nonces(now - timedelta(days=1)) == 0
    assert sorted(n.nonce for n in all_rows(SeenNonce)) == ["edge", "new"]
    assert services.purge_expired_nonces() == 1  # the clock's now
    assert [n.nonce for n in all_rows(SeenNonce)] == ["new"]


# --- the envelope: what KooGallery reads when it re-sends -----------------------------------------


def signed_tenant_sync(kg, body, nonce):
    response = kg.kit("tenantSync", body, nonce=nonce)
    assert response.status_code == 200
    return response.get_json()


def tenant_body(**over) -> dict:
    return {"tenantId": "t1", "tenantCode": "acme", "name": "Acme", "domainName": IDP, "flag": 1, "testFlag": 0,
            "timeStamp": T2, "instanceId": "i1", "orderId": "o1", **over}


def test_a_resend_with_the_same_nonce_gets_the_same_answer_and_applies_nothing_twice(kg, app):
    first = signed_tenant_sync(kg, tenant_body(), "A" * 32)
    with app.app_context():  # a newer change in between: the re-send must not undo it
        db.session.execute(db.update(Tenant).values(name="Renamed", last_sync_ts=T3))
        db.session.commit()
    again = signed_tenant_sync(kg, tenant_body(), "A" * 32)
    other = signed_tenant_sync(kg, tenant_body(name="Other"), "A" * 32)
    assert first == again == {"resultCode": "000000", "resultMsg": "success"}
    assert other == {"resultCode": "000001", "resultMsg": "nonce was already used (replayed request)"}
    with app.app_context():
        assert db.session.get(Tenant, "t1").name == "Renamed"


def test_a_debug_resend_is_answered_like_the_first_and_changes_nothing(kg, app):
    signed_tenant_sync(kg, tenant_body(), "B" * 32)
    debug = tenant_body(testFlag=1, name="Debug", timeStamp=T9)
    first = signed_tenant_sync(kg, debug, "C" * 32)
    again = signed_tenant_sync(kg, debug, "C" * 32)
    assert first == again == {"resultCode": "000000", "resultMsg": "success (debug call; production data kept)"}
    with app.app_context():
        t = db.session.get(Tenant, "t1")
        assert (t.name, t.last_sync_ts, t.test_flag) == ("Acme", T2, False)


# --- a production kit call naming an unknown instance -------------------------------------------


@pytest.mark.parametrize("instance_id, body, stored, unknown", [
    ("i9", {}, False, True),
    ("i9", {"testFlag": 0}, False, True),
    ("i9", {"testFlag": 1}, False, False),  # debug calls name the saved case's instance
    ("i9", {}, True, False),
    (None, {}, False, False),
])
def test_an_unknown_instance_is_noted_for_the_operator_only(app_ctx, instance_id, body, stored, unknown):
    if stored:
        db.session.add(Instance(instance_id="i9", order_id="o", order_line_id="l"))
        db.session.commit()
    outcome = services.note_unknown_instance(services.Outcome(tenant_id="t1", instance_id=instance_id), body)
    assert (outcome.message, outcome.unknown_instance, outcome.audit_note) == (
        "success", unknown, "instanceId i9 matches no instance (no newInstance received)" if unknown else "")


# --- tenantSync -----------------------------------------------------------------------------------


def tenant_sync(body, *, insecure=False, networks=()):
    return applied(services.apply_tenant_sync, body, allow_insecure_idp=insecure, allowed_networks=networks)


def tenant_state(tid="t1"):
    t = get(Tenant, tid)
    return t and (t.tenant_code, t.name, t.domain_name, t.test_flag, t.last_sync_ts, t.deleted_at is not None)


def links():
    return [(r.tenant_id, r.instance_id, r.order_id) for r in all_rows(TenantInstance, TenantInstance.instance_id)]


def test_an_add_stores_the_tenant_and_binds_its_order(seen):
    outcome = tenant_sync(tenant_body())
    assert (outcome.message, outcome.tenant_id, outcome.instance_id, outcome.extra, outcome.unknown_instance) == (
        "success", "t1", "i1", {}, False)
    assert tenant_state() == ("acme", "Acme", IDP, False, T2, False)
    assert links() == [("t1", "i1", "o1")]
    assert all_rows(TenantInstance)[0].created_at is not None
    assert seen == []  # a new tenant moved no centre


def test_a_second_order_binds_the_same_tenant_again(seen):
    tenant_sync(tenant_body())
    tenant_sync(tenant_body(instanceId="i2", orderId="", timeStamp=T3))
    tenant_sync(tenant_body(timeStamp=T4, orderId="o-later"))  # a repeat keeps the first link
    assert links() == [("t1", "i1", "o1"), ("t1", "i2", None)]


def test_a_tenant_without_an_instance_binds_nothing(seen):
    outcome = tenant_sync(tenant_body(instanceId="", orderId=""))
    assert (outcome.message, outcome.instance_id) == ("success", None)
    assert links() == []
    assert tenant_state() == ("acme", "Acme", IDP, False, T2, False)


def test_an_add_needs_the_code_and_a_modify_does_not(seen):
    body = tenant_body()
    del body["tenantCode"]
    assert refusal(services.apply_tenant_sync, body, allow_insecure_idp=False) == ("000002", "tenantCode is missing")
    assert get(Tenant, "t1") is None
    tenant_sync({**body, "flag": 2})
    assert tenant_state() == ("", "Acme", IDP, False, T2, False)


def test_a_modify_changes_name_and_domain_and_fills_only_a_blank_code(seen):
    tenant_sync(tenant_body(flag=2, tenantCode=""))
    assert tenant_state()[0] == ""
    outcome = tenant_sync(tenant_body(flag=2, tenantCode="acme", name="Acme 2", timeStamp=T3))
    assert outcome.message == "success"
    assert tenant_state() == ("acme", "Acme 2", IDP, False, T3, False)
    tenant_sync(tenant_body(flag=2, tenantCode="other", name="Acme 3", domainName="https://idp2.example.com",
                            timeStamp=T4))
    assert tenant_state() == ("acme", "Acme 3", "https://idp2.example.com", False, T4, False)
    assert seen == [("centre", "t1")]  # only the call that moved the centre


def test_an_add_sets_the_code_again_and_revives_a_deleted_tenant(seen):
    tenant_sync(tenant_body())
    tenant_sync(tenant_body(flag=0, instanceId="", timeStamp=T3))
    assert tenant_state()[5] is True
    tenant_sync(tenant_body(tenantCode="acme2", name="Acme 2", domainName="idp2.example.com", timeStamp=T4))
    assert tenant_state() == ("acme2", "Acme 2", "https://idp2.example.com", False, T4, False)


def test_a_new_domain_ends_logins_under_way_at_the_old_centre(seen):
    tenant_sync(tenant_body())
    tenant_sync(tenant_body(timeStamp=T3))
    assert seen == []
    tenant_sync(tenant_body(domainName="idp2.example.com/", timeStamp=T4))
    assert seen == [("centre", "t1")]
    assert tenant_state()[2] == "https://idp2.example.com"


@pytest.mark.parametrize("over, message", [
    ({"timeStamp": T1, "name": "Old", "domainName": "https://old.example.com", "instanceId": "i2"},
     "success (older than stored data; ignored)"),
    ({"timeStamp": T9, "name": "Debug", "domainName": "https://old.example.com", "instanceId": "i2", "testFlag": 1},
     "success (debug call; production data kept)"),
    ({"timeStamp": T1, "flag": 0}, "success (older than stored data; ignored)"),
    ({"timeStamp": T1, "flag": 0, "instanceId": ""}, "success (older than stored data; ignored)"),
    ({"timeStamp": T9, "flag": 0, "testFlag": 1}, "success (debug call; production data kept)"),
])
def test_an_older_or_debug_call_is_acknowledged_and_changes_nothing(seen, over, message):
    tenant_sync(tenant_body())
    db.session.add(TenantApp(tenant_id="t1", app_id="a1", client_secret_enc="sealed", last_sync_ts=T2))
    db.session.commit()
    outcome = tenant_sync(tenant_body(**over))
    assert (outcome.message, outcome.tenant_id) == (message, "t1")
    assert tenant_state() == ("acme", "Acme", IDP, False, T2, False)
    assert links() == [("t1", "i1", "o1")]
    assert get(TenantApp, "t1", "a1").client_secret_enc == "sealed"
    assert seen == []


def test_a_debug_tenant_is_stored_flagged(seen):
    outcome = tenant_sync(tenant_body(testFlag=1))
    assert outcome.message == "success"
    assert tenant_state() == ("acme", "Acme", IDP, True, T2, False)


@pytest.mark.parametrize("holder, stored_code, flag, refused", [
    ("ACME", None, 1, True),  # codes are unique regardless of case
    ("acme", "", 2, True),  # a modify that would fill in the code
    ("acme", "one", 2, False),  # a modify that cannot change the code
    ("acme", "one", 1, True),
])
def test_a_code_held_by_another_live_tenant_is_refused(seen, holder, stored_code, flag, refused):
    db.session.add(Tenant(tenant_id="t2", tenant_code=holder, name="Other", domain_name=IDP, last_sync_ts=T1))
    if stored_code is not None:
        db.session.add(Tenant(tenant_id="t1", tenant_code=stored_code, name="Mine", domain_name=IDP, last_sync_ts=T1))
    db.session.commit()
    body = tenant_body(flag=flag)
    if refused:
        assert refusal(services.apply_tenant_sync, body, allow_insecure_idp=False) == (
            "000002", "tenantCode 'acme' is already used by another live tenant (t2); "
                      "tenant codes are unique regardless of case")
        assert tenant_state() == (None if stored_code is None else (stored_code, "Mine", IDP, False, T1, False))
    else:
        tenant_sync(body)
        assert tenant_state() == (stored_code, "Acme", IDP, False, T2, False)


def test_a_code_of_a_deleted_tenant_or_of_the_same_tenant_is_free(seen):
    db.session.add(Tenant(tenant_id="t2", tenant_code="ACME", name="Gone", domain_name=IDP, last_sync_ts=T1,
                          deleted_at=datetime.now(UTC)))
    db.session.commit()
    tenant_sync(tenant_body())
    tenant_sync(tenant_body(tenantCode="Acme", timeStamp=T3))
    assert tenant_state() == ("Acme", "Acme", IDP, False, T3, False)


@pytest.mark.parametrize("domain, insecure, networks, stored", [
    ("http://idp.example.com", True, (), "http://idp.example.com"),
    ("http://idp.example.com", False, (), ("000002", "domainName must use https")),
    ("https://10.1.2.3", False, (), ("000002", "domainName must be a public host name, not an internal address")),
    ("https://10.1.2.3", False, ("10.0.0.0/8",), "https://10.1.2.3"),
])
def test_the_domain_is_checked_with_the_operators_settings(seen, domain, insecure, networks, stored):
    body = tenant_body(domainName=domain)
    if isinstance(stored, tuple):
        assert refusal(services.apply_tenant_sync, body, allow_insecure_idp=insecure,
                       allowed_networks=networks) == stored
    else:
        tenant_sync(body, insecure=insecure, networks=networks)
        assert tenant_state()[2] == stored


@pytest.mark.parametrize("over, answer", [
    ({"name": "n" * 255}, None),
    ({"name": "n" * 256}, ("000002", "name is longer than 255 characters")),
    ({"domainName": "https://idp.example.com/" + "p" * 231}, None),
    ({"domainName": "https://idp.example.com/" + "p" * 232}, ("000002", "domainName is longer than 255 characters")),
    ({"flag": 0, "name": "n" * 255}, None),
    ({"flag": 0, "name": "n" * 256}, ("000002", "name is longer than 255 characters")),
    ({"flag": 3}, ("000002", "flag must be one of 0, 1, 2")),
    ({"timeStamp": "2024"}, ("000002", "timeStamp must be yyyyMMddHHmmssSSS")),
    ({"tenantId": ""}, ("000002", "tenantId is missing")),
    ({"instanceId": "i" * 64, "orderId": "o" * 64}, None),
    ({"instanceId": "i" * 65}, ("000002", "instanceId is longer than 64 characters")),
    ({"orderId": "o" * 65}, ("000002", "orderId is longer than 64 characters")),
    ({"flag": 0, "tenantCode": "c" * 65}, ("000002", "tenantCode is longer than 64 characters")),
])
def test_tenant_fields_have_their_limits(seen, over, answer):
    body = tenant_body(**over)
    if answer:
        assert refusal(services.apply_tenant_sync, body, allow_insecure_idp=False) == answer
    else:
        assert tenant_sync(body).message == "success"


def test_deleting_an_unknown_tenant_leaves_a_tombstone_as_sent(seen):
    outcome = tenant_sync({"tenantId": "t1", "flag": 0, "timeStamp": T2, "tenantCode": "acme", "name": "Acme"})
    assert (outcome.message, outcome.instance_id) == ("success", None)
    assert tenant_state() == ("acme", "Acme", "", False, T2, True)
    assert seen == [("access", "t1", None, "tenant_deleted")]
    tenant_sync({"tenantId": "t2", "flag": 0, "timeStamp": T2, "testFlag": 1})
    assert tenant_state("t2") == ("", "", "", True, T2, True)
    tenant_sync(tenant_body(timeStamp=T1))  # an older, late add cannot resurrect it
    assert tenant_state() == ("acme", "Acme", "", False, T2, True)


def test_deleting_a_tenant_drops_its_client_secrets_and_keeps_the_first_deletion_time(seen):
    tenant_sync(tenant_body(instanceId=""))
    db.session.add_all([TenantApp(tenant_id="t1", app_id="a1", client_secret_enc="sealed", last_sync_ts=T2),
                        TenantApp(tenant_id="t2", app_id="a1", client_secret_enc="other", last_sync_ts=T2)])
    db.session.commit()
    tenant_sync({"tenantId": "t1", "flag": 0, "timeStamp": T3})
    first = get(Tenant, "t1").deleted_at
    tenant_sync({"tenantId": "t1", "flag": 0, "timeStamp": T4})
    assert get(Tenant, "t1").deleted_at == first
    assert tenant_state() == ("acme", "Acme", IDP, False, T4, True)
    assert (get(TenantApp, "t1", "a1").client_secret_enc, get(TenantApp, "t2", "a1").client_secret_enc) == (
        None, "other")
    assert seen == [("access", "t1", None, "tenant_deleted")] * 2


def test_an_order_unbinding_leaves_the_tenant_to_the_orders_that_still_bind_it(seen):
    tenant_sync(tenant_body())
    tenant_sync(tenant_body(instanceId="i2", orderId="o2"))
    tenant_sync(tenant_body(orderId="o3", tenantId="t2", tenantCode="other"))  # t2 is bound by i1 too
    db.session.add(TenantApp(tenant_id="t1", app_id="a1", client_secret_enc="sealed", last_sync_ts=T2))
    db.session.commit()
    outcome = tenant_sync({"tenantId": "t1", "flag": 0, "timeStamp": T3, "instanceId": "i1"})
    assert (outcome.message, outcome.instance_id) == ("success (unbound from i1; 1 order(s) still bind the tenant)",
                                                      "i1")
    assert tenant_state() == ("acme", "Acme", IDP, False, T3, False)
    assert links() == [("t2", "i1", "o3"), ("t1", "i2", "o2")]
    assert get(TenantApp, "t1", "a1").client_secret_enc == "sealed"
    assert seen == []
    outcome = tenant_sync({"tenantId": "t1", "flag": 0, "timeStamp": T4, "instanceId": "i2"})
    assert outcome.message == "success"
    assert tenant_state() == ("acme", "Acme", IDP, False, T4, True)
    assert links() == [("t2", "i1", "o3")]
    assert get(TenantApp, "t1", "a1").client_secret_enc is None
    assert seen == [("access", "t1", None, "tenant_deleted")]
    assert get(Tenant, "t2").deleted_at is None  # only the unbound tenant is deleted


def test_the_last_order_unbinding_a_deleted_tenant_keeps_its_first_deletion_time(seen):
    tenant_sync(tenant_body())
    tenant_sync({"tenantId": "t1", "flag": 0, "timeStamp": T3, "instanceId": "i1"})
    first = get(Tenant, "t1").deleted_at
    assert first is not None
    tenant_sync({"tenantId": "t1", "flag": 0, "timeStamp": T4, "instanceId": "i1"})
    assert get(Tenant, "t1").deleted_at == first


# --- applicationSync ------------------------------------------------------------------------------


@pytest.fixture
def keys(app_ctx, rsa_key):
    return rsa_key[0], keyring().data


def app_body(secret_b64, **over) -> dict:
    return {"tenantId": "t1", "appId": "a1", "clientId": "client-1", "clientSecret": secret_b64, "flag": 1,
            "testFlag": 0, "timeStamp": T2, "instanceId": "i1", **over}


def application_sync(keys, body, **kw):
    private_key, box = keys
    return applied(services.apply_application_sync, body, **{"private_key": private_key, "secret_box": box, **kw})


def app_state(keys, tid="t1"):
    row = get(TenantApp, tid, "a1")
    secret = row.client_secret_enc and keys[1].decrypt(row.client_secret_enc)
    return row and (row.instance_id, row.client_id, secret, row.test_flag, row.last_sync_ts, row.deleted_at is not None)


def sealed(keys, secret: str, candidate=OAEP_CANDIDATES[0][0]) -> str:
    return encrypt_client_secret(secret, keys[0].public_key(), candidate)


def test_an_application_is_stored_with_its_secret_decrypted_and_sealed(keys, caplog):
    caplog.set_level(logging.INFO, "tenants.services")
    outcome = application_sync(keys, app_body(sealed(keys, "s3cret-value", OAEP_CANDIDATES[1][0])))
    assert (outcome.message, outcome.tenant_id, outcome.instance_id) == ("success", "t1", "i1")
    assert app_state(keys) == ("i1", "client-1", "s3cret-value", False, T2, False)
    assert get(TenantApp, "t1", "a1").client_secret_enc != "s3cret-value"
    assert [r.getMessage() for r in caplog.records] == [
        f"client_secret_decrypted tenant=t1 app=a1 params={OAEP_CANDIDATES[1][0]}"]
    assert "s3cret-value" not in caplog.text


def test_a_newer_application_sync_replaces_the_credentials_and_an_older_one_does_not(keys):
    application_sync(keys, app_body(sealed(keys, "first"), instanceId=""))
    assert app_state(keys) == (None, "client-1", "first", False, T2, False)
    application_sync(keys, app_body(sealed(keys, "second"), clientId="client-2", instanceId="i2", timeStamp=T3))
    assert app_state(keys) == ("i2", "client-2", "second", False, T3, False)
    outcome = application_sync(keys, app_body(sealed(keys, "old"), clientId="old", timeStamp=T1))
    assert outcome.message == "success (older than stored data; ignored)"
    outcome = application_sync(keys, app_body(sealed(keys, "debug"), clientId="debug", timeStamp=T9, testFlag=1))
    assert outcome.message == "success (debug call; production data kept)"
    assert app_state(keys) == ("i2", "client-2", "second", False, T3, False)


def test_a_debug_application_is_stored_flagged(keys):
    application_sync(keys, app_body(sealed(keys, "debug"), testFlag=1))
    assert app_state(keys) == ("i1", "client-1", "debug", True, T2, False)


@pytest.mark.parametrize("over, kw, answer", [
    ({}, {"private_key": None}, ("000101", "bridge has no RSA private key yet (operator: run flask keys generate)")),
    ({"clientSecret": "not base64!"}, {}, ("000101", "clientSecret cannot be decrypted: clientSecret is not Base64")),
    ({"clientSecret": "x" * 4097}, {}, ("000002", "clientSecret is longer than 4096 characters")),
    ({"clientId": None}, {}, ("000002", "clientId is missing")),
    ({"clientSecret": None}, {}, ("000002", "clientSecret is missing")),
    ({"appId": None}, {}, ("000002", "appId is missing")),
    ({"flag": 3}, {}, ("000002", "flag must be one of 0, 1, 2")),
])
def test_an_unusable_application_sync_is_refused_and_stores_nothing(keys, over, kw, answer):
    body = {k: v for k, v in app_body(sealed(keys, "s"), **over).items() if v is not None}
    assert refusal(services.apply_application_sync, body,
                   **{"private_key": keys[0], "secret_box": keys[1], **kw}) == answer
    assert get(TenantApp, "t1", "a1") is None


def test_a_secret_of_the_longest_length_is_read(keys):
    code, message = refusal(services.apply_application_sync, app_body("A" * 4096), private_key=keys[0],
                            secret_box=keys[1])
    assert (code, message.split(":")[0]) == ("000101", "clientSecret cannot be decrypted")


def test_deleting_an_application_drops_its_secret_and_keeps_the_first_deletion_time(keys):
    application_sync(keys, app_body(sealed(keys, "s")))
    outcome = application_sync(keys, {"tenantId": "t1", "appId": "a1", "flag": 0, "timeStamp": T3})
    assert (outcome.message, outcome.instance_id) == ("success", None)
    assert app_state(keys) == ("i1", "client-1", None, False, T3, True)
    first = get(TenantApp, "t1", "a1").deleted_at
    application_sync(keys, {"tenantId": "t1", "appId": "a1", "flag": 0, "timeStamp": T4})
    assert get(TenantApp, "t1", "a1").deleted_at == first
    outcome = application_sync(keys, app_body(sealed(keys, "late"), timeStamp=T1))
    assert outcome.message == "success (older than stored data; ignored)"
    assert app_state(keys) == ("i1", "client-1", None, False, T4, True)
    application_sync(keys, app_body(sealed(keys, "back"), timeStamp=T9))
    assert app_state(keys) == ("i1", "client-1", "back", False, T9, False)


def test_deleting_an_unknown_application_leaves_a_tombstone(keys):
    application_sync(keys, {"tenantId": "t1", "appId": "a1", "flag": 0, "timeStamp": T3, "instanceId": "i1",
                            "testFlag": 1})
    assert app_state(keys) == ("i1", None, None, True, T3, True)


@pytest.mark.parametrize("test_flag, message", [(0, "success (older than stored data; ignored)"),
                                                (1, "success (debug call; production data kept)")])
def test_an_older_or_debug_delete_keeps_the_application(keys, test_flag, message):
    application_sync(keys, app_body(sealed(keys, "s")))
    outcome = application_sync(keys, {"tenantId": "t1", "appId": "a1", "flag": 0, "testFlag": test_flag,
                                      "timeStamp": T1 if not test_flag else T9})
    assert outcome.message == message
    assert app_state(keys) == ("i1", "client-1", "s", False, T2, False)


# --- authSync -------------------------------------------------------------------------------------


def auth_body(users, **over) -> dict:
    return {"tenantId": "t1", "appId": "a1", "instanceId": "i1", "userList": users, "flag": 1, "testFlag": 0,
            "timeStamp": T2, **over}


def auth_sync(body, max_users=100):
    return applied(services.apply_auth_sync, body, max_users=max_users)


PROFILE = ("app_id", "name", "org_code", "position", "employee_code", "employee_type", "role", "enabled", "mobile",
           "email", "work_place", "entry_date", "authorized", "test_flag", "last_sync_ts")


def user_state(name, tid="t1"):
    u = get(TenantUser, tid, name)
    return u and ({c: getattr(u, c) for c in PROFILE} | {"deleted": u.deleted_at is not None})


FULL = {"userName": "alice", "name": "Alice", "orgCode": "D1", "position": "CTO", "employeeCode": "E1",
        "employeeType": "3", "role": "ADMIN", "enable": "true", "mobile": "+8613800000000", "email": "a@example.com",
        "workPlace": "Shenzhen", "entryDate": "2024-01-01"}
ALICE = {"app_id": "a1", "name": "Alice", "org_code": "D1", "position": "CTO", "employee_code": "E1",
         "employee_type": 3, "role": "admin", "enabled": True, "mobile": "+8613800000000", "email": "a@example.com",
         "work_place": "Shenzhen", "entry_date": "2024-01-01", "authorized": True, "test_flag": False,
         "last_sync_ts": T2, "deleted": False}
BLANK = {"app_id": "a1", "name": None, "org_code": None, "position": None, "employee_code": None,
         "employee_type": None, "role": "user", "enabled": True, "mobile": None, "email": None, "work_place": None,
         "entry_date": None, "authorized": True, "test_flag": False, "last_sync_ts": T2, "deleted": False}


def test_authorised_users_are_stored_with_their_profiles(seen):
    outcome = auth_sync(auth_body([FULL, {"userName": "bob"}]))
    assert (outcome.message, outcome.tenant_id, outcome.instance_id) == ("success (2 user(s))", "t1", "i1")
    assert user_state("alice") == ALICE
    assert user_state("bob") == BLANK
    assert seen == []


def test_v1_profile_fields_nested_under_extension_are_read_and_top_level_ones_win(seen):
    auth_sync(auth_body([{"userName": "alice", "email": "top@example.com",
                          "extension": {"email": "nested@example.com", "position": "Lead", "employeeType": 7}},
                         {"userName": "bob", "extension": "not an object", "position": "Dev"}]))
    assert user_state("alice") == BLANK | {"email": "top@example.com", "position": "Lead", "employee_type": 7}
    assert user_state("bob") == BLANK | {"position": "Dev"}


def test_the_sync_time_is_current_sync_time_and_else_the_timestamp(seen):
    auth_sync(auth_body([{"userName": "alice"}], currentSyncTime=T3))
    auth_sync(auth_body([{"userName": "bob"}], currentSyncTime=""))
    assert (user_state("alice")["last_sync_ts"], user_state("bob")["last_sync_ts"]) == (T3, T2)


def test_a_modify_keeps_the_fields_it_does_not_send_and_a_new_user_gets_none(seen):
    auth_sync(auth_body([FULL]))
    outcome = auth_sync(auth_body([{"userName": "alice", "email": "new@example.com", "role": "manager", "name": ""},
                                   {"userName": "carol", "email": "c@example.com"}], flag=2, appId="a2",
                                  timeStamp=T3))
    assert outcome.message == "success (2 user(s))"
    assert user_state("alice") == ALICE | {"email": "new@example.com", "role": "user", "name": None, "app_id": "a2",
                                           "last_sync_ts": T3}
    assert user_state("carol") == BLANK | {"email": "c@example.com", "app_id": "a2", "last_sync_ts": T3}


def test_a_name_repeated_in_one_batch_takes_its_last_entry(seen):
    outcome = auth_sync(auth_body([{"userName": "alice", "name": "First"}, {"userName": "alice", "name": "Last"}]))
    assert outcome.message == "success (1 user(s))"
    assert user_state("alice")["name"] == "Last"


def test_cancelling_an_authorisation_keeps_the_profile_and_revokes_access(seen):
    auth_sync(auth_body([FULL, {"userName": "bob"}]))
    outcome = auth_sync(auth_body([{"userName": "bob", "name": "ignored"}, {"userName": "alice"}], flag=3,
                                  timeStamp=T3))
    assert outcome.message == "success (2 user(s))"
    assert user_state("alice") == ALICE | {"authorized": False, "last_sync_ts": T3}
    assert user_state("bob") == BLANK | {"authorized": False, "last_sync_ts": T3}
    assert seen == [("access", "t1", ["alice", "bob"], "user_revoked")]
    auth_sync(auth_body([{"userName": "alice"}], flag=2, timeStamp=T4))  # granted again
    assert user_state("alice") == ALICE | {"last_sync_ts": T4}


def test_deleting_users_tombstones_them_and_keeps_the_first_deletion_time(seen):
    auth_sync(auth_body([FULL]))
    outcome = auth_sync(auth_body([{"userName": "alice"}, {"userName": "ghost"}], flag=0, timeStamp=T3))
    assert outcome.message == "success (2 user(s))"
    assert user_state("alice") == ALICE | {"authorized": False, "deleted": True, "last_sync_ts": T3}
    assert user_state("ghost") == BLANK | {"authorized": False, "deleted": True, "last_sync_ts": T3}
    first = get(TenantUser, "t1", "alice").deleted_at
    auth_sync(auth_body([{"userName": "alice"}], flag=0, timeStamp=T4))
    assert get(TenantUser, "t1", "alice").deleted_at == first
    assert seen == [("access", "t1", ["alice", "ghost"], "user_deleted"), ("access", "t1", ["alice"], "user_deleted")]
    auth_sync(auth_body([{"userName": "alice"}], timeStamp=T1))  # an older, late add cannot resurrect her
    assert user_state("alice")["deleted"] is True
    auth_sync(auth_body([{"userName": "alice"}], timeStamp=T9))
    assert user_state("alice") == ALICE | {"last_sync_ts": T9}


@pytest.mark.parametrize("enable, revoked", [("false", True), ("FALSE", True), (False, True), ("true", False),
                                             ("", False)])
def test_disabling_users_revokes_the_access_of_the_batch(seen, enable, revoked):
    outcome = auth_sync(auth_body([{"userName": "bob"}, {"userName": "alice", "enable": enable}]))
    assert outcome.message == "success (2 user(s))"
    assert user_state("alice")["enabled"] is not revoked
    assert seen == ([("access", "t1", ["alice", "bob"], "user_disabled")] if revoked else [])


def test_a_disabled_user_older_than_stored_revokes_nothing(seen):
    auth_sync(auth_body([{"userName": "alice"}], timeStamp=T3))
    outcome = auth_sync(auth_body([{"userName": "alice", "enable": "false"}], timeStamp=T1))
    assert outcome.message == "success (1 user(s); 1 older than stored data, ignored)"
    assert user_state("alice")["enabled"] is True
    assert seen == []


@pytest.mark.parametrize("flag", [0, 3])
def test_an_older_revocation_changes_no_user_and_names_none(seen, flag):
    auth_sync(auth_body([{"userName": "alice"}], timeStamp=T3))
    outcome = auth_sync(auth_body([{"userName": "alice"}], flag=flag, timeStamp=T1))
    assert outcome.message == "success (1 user(s); 1 older than stored data, ignored)"
    assert user_state("alice") == BLANK | {"last_sync_ts": T3}
    assert seen == [("access", "t1", [], {0: "user_deleted", 3: "user_revoked"}[flag])]


def test_the_users_kept_are_counted_in_the_answer(seen):
    auth_sync(auth_body([FULL, {"userName": "bob"}], timeStamp=T3))
    outcome = auth_sync(auth_body([{"userName": "alice", "name": "Old"}, {"userName": "bob", "name": "Old"},
                                   {"userName": "carol"}], timeStamp=T1))
    assert outcome.message == "success (3 user(s); 2 older than stored data, ignored)"
    outcome = auth_sync(auth_body([{"userName": "alice", "name": "Debug"}, {"userName": "dave"}], timeStamp=T9,
                                  testFlag=1))
    assert outcome.message == "success (2 user(s); 1 kept: production data)"
    assert user_state("alice") == ALICE | {"last_sync_ts": T3}
    assert user_state("dave") == BLANK | {"test_flag": True, "last_sync_ts": T9}


@pytest.mark.parametrize("users, max_users, answer", [
    ([{"userName": "a"}, {"userName": "b"}], 2, None),
    ([{"userName": "a"}, {"userName": "b"}, {"userName": "c"}], 2,
     ("000002", "userList has 3 users; at most 2 per call")),
    ([{"userName": "a"}, {"name": "no user name"}], 100, ("000002", "userList[1].userName is missing")),
    ([{"userName": "a", "email": "e" * 129}], 100, ("000002", "userList[0].email is longer than 128 characters")),
    ([{"userName": "a", "email": "e" * 128, "mobile": "1" * 32, "workPlace": "w" * 255, "name": "n" * 64}], 100, None),
    ([{"userName": "a", "extension": {"mobile": "1" * 33}}], 100,
     ("000002", "userList[0].mobile is longer than 32 characters")),
    ([{"userName": "a", "employeeType": 99}, {"userName": "b", "employeeType": 0}], 100, None),
    ([{"userName": "a"}, {"userName": "b", "employeeType": "100"}], 100,
     ("000002", "userList[1].employeeType must be one of " + ", ".join(map(str, range(100))))),
    ([{"userName": "a", "role": "r" * 32}], 100, None),
    ([{"userName": "a", "role": "r" * 33}], 100, ("000002", "userList[0].role is longer than 32 characters")),
    ([{"userName": "a", "enable": "yes"}], 100, ("000002", 'userList[0].enable must be "true" or "false"')),
    ([{"userName": "a", "position": "p" * 65}], 100, ("000002", "userList[0].position is longer than 64 characters")),
])
def test_user_lists_have_their_limits(seen, users, max_users, answer):
    body = auth_body(users)
    if answer:
        assert refusal(services.apply_auth_sync, body, max_users=max_users) == answer
        assert all_rows(TenantUser) == []
    else:
        assert auth_sync(body, max_users=max_users).message == f"success ({len(users)} user(s))"


def test_empty_profile_fields_are_absent(seen):
    auth_sync(auth_body([{"userName": "alice", "employeeType": "", "role": "", "enable": "", "email": ""}]))
    assert user_state("alice") == BLANK


def test_a_profile_is_not_read_for_a_revocation(seen):
    outcome = auth_sync(auth_body([{"userName": "alice", "email": "e" * 500, "enable": "maybe"}], flag=3))
    assert outcome.message == "success (1 user(s))"
    assert user_state("alice") == BLANK | {"authorized": False}


@pytest.mark.parametrize("over, answer", [
    ({"flag": 4}, ("000002", "flag must be one of 0, 1, 2, 3")),
    ({"currentSyncTime": T3, "timeStamp": "bad"}, ("000002", "timeStamp must be yyyyMMddHHmmssSSS")),
    ({"currentSyncTime": "bad"}, ("000002", "currentSyncTime must be yyyyMMddHHmmssSSS")),
    ({"userList": None}, ("000002", "userList is missing")),
    ({"appId": ""}, ("000002", "appId is missing")),
])
def test_an_auth_sync_with_a_bad_field_is_refused(seen, over, answer):
    assert refusal(services.apply_auth_sync, auth_body([{"userName": "a"}], **over), max_users=10) == answer


def test_an_auth_sync_without_an_instance_names_none(seen):
    assert auth_sync(auth_body([{"userName": "a"}], instanceId="")).instance_id is None


# --- singleOrgSync and allOrgSync ------------------------------------------------------------------


def org_body(code="D1", **over) -> dict:
    return {"tenantId": "t1", "orgCode": code, "orgName": f"Dept {code}", "parentCode": "", "flag": 1, "testFlag": 0,
            "timeStamp": T2, "instanceId": "i1", **over}


def org_state(code="D1", tid="t1"):
    d = get(Department, tid, code)
    return d and (d.org_name, d.parent_code, d.test_flag, d.last_sync_ts, d.deleted_at is not None)


def test_a_department_is_stored_changed_and_deleted(seen):
    outcome = applied(services.apply_single_org_sync, org_body())
    assert (outcome.message, outcome.tenant_id, outcome.instance_id) == ("success", "t1", "i1")
    assert org_state() == ("Dept D1", None, False, T2, False)
    applied(services.apply_single_org_sync, org_body(flag=2, orgName="Finance", parentCode="D0", timeStamp=T3))
    assert org_state() == ("Finance", "D0", False, T3, False)
    outcome = applied(services.apply_single_org_sync, org_body(flag=0, orgName="", instanceId="", timeStamp=T4))
    assert (outcome.message, outcome.instance_id) == ("success", None)
    assert org_state() == ("Finance", "D0", False, T4, True)
    first = get(Department, "t1", "D1").deleted_at
    applied(services.apply_single_org_sync, org_body(flag=0, timeStamp=T9))
    assert get(Department, "t1", "D1").deleted_at == first
    applied(services.apply_single_org_sync, org_body(flag=1, timeStamp=T9))
    assert org_state() == ("Dept D1", None, False, T9, False)


def test_deleting_an_unknown_department_leaves_a_tombstone(seen):
    applied(services.apply_single_org_sync, {"tenantId": "t1", "orgCode": "D1", "flag": 0, "timeStamp": T2,
                                             "parentCode": "D0", "testFlag": 1})
    applied(services.apply_single_org_sync, {"tenantId": "t1", "orgCode": "D2", "flag": 0, "timeStamp": T2,
                                             "orgName": "Named"})
    assert (org_state("D1"), org_state("D2")) == (("", None, True, T2, True), ("Named", None, False, T2, True))


@pytest.mark.parametrize("over, message", [
    ({"timeStamp": T1, "orgName": "Old"}, "success (older than stored data; ignored)"),
    ({"timeStamp": T9, "orgName": "Debug", "testFlag": 1}, "success (debug call; production data kept)"),
    ({"timeStamp": T1, "flag": 0}, "success (older than stored data; ignored)"),
])
def test_an_older_or_debug_department_call_changes_nothing(seen, over, message):
    applied(services.apply_single_org_sync, org_body())
    assert applied(services.apply_single_org_sync, org_body(**over)).message == message
    assert org_state() == ("Dept D1", None, False, T2, False)


@pytest.mark.parametrize("over, answer", [
    ({"orgName": "n" * 128}, None),
    ({"orgName": "n" * 129}, ("000002", "orgName is longer than 128 characters")),
    ({"orgName": None}, ("000002", "orgName is missing")),
    ({"flag": 0, "orgName": "n" * 128}, None),
    ({"flag": 0, "orgName": "n" * 129}, ("000002", "orgName is longer than 128 characters")),
    ({"orgCode": None}, ("000002", "orgCode is missing")),
    ({"flag": 3}, ("000002", "flag must be one of 0, 1, 2")),
])
def test_department_fields_have_their_limits(seen, over, answer):
    body = {k: v for k, v in org_body(**over).items() if v is not None}
    if answer:
        assert refusal(services.apply_single_org_sync, body) == answer
    else:
        assert applied(services.apply_single_org_sync, body).message == "success"


def all_orgs(items, **over) -> dict:
    return {"tenantId": "t1", "orgInfoList": items, "testFlag": 0, "timeStamp": T2, "instanceId": "i1", **over}


def test_a_full_list_replaces_the_tenants_departments(seen):
    applied(services.apply_single_org_sync, org_body("D9"))
    applied(services.apply_single_org_sync, org_body("D9", tenantId="t2"))
    applied(services.apply_single_org_sync, org_body("D8", timeStamp=T9))  # newer than the list: kept
    outcome = applied(services.apply_all_org_sync, all_orgs(
        [{"orgCode": "D2", "OrgName": "Two", "parentCode": "D1"}, {"orgCode": "D1", "orgName": "", "name": "One"},
         {"orgCode": "D3", "orgName": "Three", "OrgName": "3", "name": "iii", "parentCode": ""}], timeStamp=T3))
    assert (outcome.message, outcome.tenant_id, outcome.instance_id) == (
        "success (3 department(s), 1 removed)", "t1", "i1")
    assert [org_state(c) for c in ("D1", "D2", "D3", "D8", "D9")] == [
        ("One", None, False, T3, False), ("Two", "D1", False, T3, False), ("Three", None, False, T3, False),
        ("Dept D8", None, False, T9, False), ("Dept D9", None, False, T3, True)]
    assert org_state("D9", "t2") == ("Dept D9", None, False, T2, False)
    list_row = get(DepartmentList, "t1")
    assert (list_row.test_flag, list_row.last_sync_ts) == (False, T3)
    applied(services.apply_all_org_sync, all_orgs([{"orgCode": "D9", "orgName": "Back"}], timeStamp=T4))
    assert org_state("D9") == ("Back", None, False, T4, False)  # a newer list brings a removed one back


def test_a_full_list_counts_the_newer_departments_it_kept(seen):
    applied(services.apply_single_org_sync, org_body("D1", timeStamp=T9))
    outcome = applied(services.apply_all_org_sync, all_orgs('[{orgCode:"D1",orgName:"One"},{orgCode:"D2",'
                                                            'orgName:"Two"}]', instanceId=""))
    assert (outcome.message, outcome.instance_id) == ("success (2 department(s), 0 removed, 1 newer kept)", None)
    assert (org_state("D1"), org_state("D2")) == (("Dept D1", None, False, T9, False), ("Two", None, False, T2, False))


@pytest.mark.parametrize("over, message", [
    ({"timeStamp": T1}, "success (older than stored data; ignored)"),
    ({"timeStamp": T9, "testFlag": 1}, "success (debug call; production data kept)"),
])
def test_an_older_or_debug_full_list_changes_nothing(seen, over, message):
    applied(services.apply_all_org_sync, all_orgs([{"orgCode": "D1", "orgName": "One"}]))
    outcome = applied(services.apply_all_org_sync, all_orgs([{"orgCode": "D2", "orgName": "Two"}], **over))
    assert outcome.message == message
    assert (org_state("D1"), org_state("D2")) == (("One", None, False, T2, False), None)
    assert get(DepartmentList, "t1").last_sync_ts == T2


def test_a_debug_full_list_removes_no_production_department(seen):
    applied(services.apply_single_org_sync, org_body("D9"))
    outcome = applied(services.apply_all_org_sync, all_orgs([{"orgCode": "D1", "orgName": "One"}], testFlag=1,
                                                            timeStamp=T3))
    assert outcome.message == "success (1 department(s), 0 removed)"
    assert (org_state("D1"), org_state("D9")) == (("One", None, True, T3, False), ("Dept D9", None, False, T2, False))


def test_a_debug_full_list_of_a_new_tenant_is_stored_flagged(seen):
    applied(services.apply_all_org_sync, all_orgs([{"orgCode": "D1", "orgName": "One"}], testFlag=1))
    assert org_state("D1") == ("One", None, True, T2, False)
    assert get(DepartmentList, "t1").test_flag is True


@pytest.mark.parametrize("body, answer", [
    ({"orgInfo": [{"orgCode": "D1", "orgName": "x"}, {"orgName": "y"}]}, ("000002", "orgInfo[1].orgCode is missing")),
    ({"orgInfoList": [{"orgCode": "D1"}]}, ("000002", "orgInfoList[0].orgName is missing")),
    ({"orgInfoList": [{"orgCode": "D1", "name": "n" * 129}]},
     ("000002", "orgInfoList[0].name is longer than 128 characters")),
    ({"orgInfoList": [{"orgCode": "D1", "orgName": "x", "parentCode": ["D0"]}]},
     ("000002", "orgInfoList[0].parentCode must be a string")),
    ({"orgInfoList": [{"orgCode": "D1", "orgName": "x", "parentCode": "p" * 65}]},
     ("000002", "orgInfoList[0].parentCode is longer than 64 characters")),
    ({}, ("000002", "orgInfoList is missing")),
])
def test_a_bad_department_in_a_full_list_is_named(seen, body, answer):
    assert refusal(services.apply_all_org_sync, {"tenantId": "t1", "timeStamp": T2, **body}) == answer
    assert all_rows(Department) == [] and all_rows(DepartmentList) == []


def test_a_full_list_of_the_longest_names_is_stored(seen):
    applied(services.apply_all_org_sync, {"tenantId": "t1", "timeStamp": T2, "orgInfo": {"orgCode": "D1",
                                                                                         "orgName": "n" * 128}})
    assert org_state("D1") == ("n" * 128, None, False, T2, False)


# --- the domainId the operator records --------------------------------------------------------------


def live_tenant(tid, **kw) -> Tenant:
    t = Tenant(**{"tenant_id": tid, "tenant_code": "c-" + tid, "name": tid, "domain_name": IDP, "last_sync_ts": T1,
                  **kw})
    db.session.add(t)
    db.session.commit()
    return t


def test_a_domain_id_is_recorded_and_forgotten(app_ctx, caplog):
    caplog.set_level(logging.INFO, "tenants.services")
    t = live_tenant("t1")
    services.record_domain_id(t, "!" + "~" * 63)
    db.session.commit()
    assert get(Tenant, "t1").domain_id == "!" + "~" * 63
    services.record_domain_id(get(Tenant, "t1"), "!" + "~" * 63)  # again: no conflict with itself
    services.record_domain_id(get(Tenant, "t1"), None)
    db.session.commit()
    assert get(Tenant, "t1").domain_id is None
    assert [r.getMessage() for r in caplog.records] == [
        f"tenant_domain_id_recorded tenant=t1 domain_id='!{'~' * 63}'"] * 2 + [
        "tenant_domain_id_recorded tenant=t1 domain_id=None"]


@pytest.mark.parametrize("value", ["", "a b", "x" * 65, "é", "a\n"])
def test_a_domain_id_must_look_like_one(app_ctx, value):
    t = live_tenant("t1", domain_id="kept")
    with pytest.raises(services.RecordError) as err:
        services.record_domain_id(t, value)
    assert str(err.value) == "a domainId is 1 to 64 printable characters without spaces"
    assert get(Tenant, "t1").domain_id == "kept"


def test_two_live_tenants_never_share_a_domain_id(app_ctx):
    live_tenant("t2", domain_id="ent-1")
    live_tenant("t3", domain_id="ent-2", deleted_at=datetime.now(UTC))
    t = live_tenant("t1")
    with pytest.raises(services.RecordError) as err:
        services.record_domain_id(t, "ent-1")
    assert str(err.value) == "domainId 'ent-1' is already recorded for tenant t2"
    services.record_domain_id(t, "ent-2")  # a deleted tenant's is free
    db.session.commit()
    assert get(Tenant, "t1").domain_id == "ent-2"


# --- basic interfaces: the instance lifecycle --------------------------------------------------------


def new_body(**over) -> dict:
    return {"activity": "newInstance", "businessId": "i1", "orderId": "o1", "orderLineId": "l1", "testFlag": "0",
            **over}


INSTANCE = ("order_id", "order_line_id", "product_id", "sku_code", "seats", "status", "test_flag", "last_order_id",
            "seats_requested")


def instance_state(iid="i1"):
    i = get(Instance, iid)
    return i and {c: getattr(i, c) for c in INSTANCE} | {"expire": i.expire_time and aware(i.expire_time),
                                                         "released": i.released_at is not None}


NEW = {"order_id": "o1", "order_line_id": "l1", "product_id": None, "sku_code": None, "seats": None,
       "status": "ACTIVE", "test_flag": False, "last_order_id": None, "seats_requested": None, "expire": None,
       "released": False}


def test_a_new_instance_is_created_once_per_order_line(seen):
    outcome = applied(services.new_instance, new_body(productId="p1", skuCode="s1", productInfo={"linearValue": 5}))
    assert (outcome.message, outcome.extra, outcome.instance_id) == ("success", {"instanceId": "i1"}, "i1")
    assert instance_state() == NEW | {"product_id": "p1", "sku_code": "s1", "seats": 5}
    assert get(Instance, "i1").created_at is not None and get(Instance, "i1").updated_at is not None
    again = applied(services.new_instance, new_body(businessId="i2"))  # a re-send with a new businessId
    assert (again.message, again.extra, again.instance_id) == ("success", {"instanceId": "i1"}, "i1")
    assert get(Instance, "i2") is None


def test_the_order_line_is_named_by_order_and_line_together(seen):
    applied(services.new_instance, new_body())
    outcome = applied(services.new_instance, new_body(businessId="i2", orderId="o2"))  # line "l1" of another order
    assert (outcome.message, outcome.extra) == ("success", {"instanceId": "i2"})
    assert [(i.instance_id, i.order_id, i.order_line_id) for i in all_rows(Instance, Instance.instance_id)] == [
        ("i1", "o1", "l1"), ("i2", "o2", "l1")]


def test_a_business_id_of_another_order_line_is_refused_and_a_debug_call_answered(seen):
    applied(services.new_instance, new_body())
    assert refusal(services.new_instance, new_body(orderLineId="l2")) == (
        "000002", "businessId i1 is already the instance of another order line")
    outcome = applied(services.new_instance, new_body(orderLineId="l2", testFlag="1"))
    assert (outcome.message, outcome.extra, outcome.instance_id) == (
        "success (debug call; businessId belongs to another order line)", {"instanceId": "i1"}, "i1")
    assert [i.order_line_id for i in all_rows(Instance)] == ["l1"]


def test_a_debug_instance_is_kept_flagged(seen):
    outcome = applied(services.new_instance, new_body(testFlag="1"))
    assert (outcome.message, outcome.extra) == ("success", {"instanceId": "i1"})
    assert instance_state() == NEW | {"test_flag": True}


@pytest.mark.parametrize("over, seats", [
    ({"productInfo": {"linearValue": "7"}, "linearValue": 8, "amount": 9}, 7),
    ({"productInfo": {"linearValue": ""}, "linearValue": 8, "amount": 9}, 8),
    ({"productInfo": "not an object", "linearValue": None, "amount": "9"}, 9),
    ({"linearValue": 0}, 0),
    ({"amount": ""}, None),
])
def test_the_purchased_quantity_is_read_where_each_version_puts_it(seen, over, seats):
    applied(services.new_instance, new_body(**over))
    assert instance_state()["seats"] == seats


@pytest.mark.parametrize("over, answer", [
    ({"amount": "-1"}, ("000002", "amount must be a whole number from 0 to 1000000000")),
    ({"productInfo": {"linearValue": True}}, ("000002", "linearValue must be a whole number from 0 to 1000000000")),
    ({"orderLineId": None}, ("000002", "orderLineId is missing")),
    ({"businessId": None}, ("000002", "businessId is missing")),
    ({"orderId": None}, ("000002", "orderId is missing")),
])
def test_a_new_instance_with_a_bad_field_is_refused(seen, over, answer):
    body = {k: v for k, v in new_body(**over).items() if v is not None}
    assert refusal(services.new_instance, body) == answer
    assert all_rows(Instance) == []


def stored_instance(iid="i1", tenants=("t1",), **kw) -> None:
    db.session.add(Instance(**{"instance_id": iid, "order_id": "o1", "order_line_id": "l-" + iid[-8:],
                               "status": InstanceStatus.ACTIVE, **kw}))
    db.session.add_all([TenantInstance(tenant_id=t, instance_id=iid) for t in tenants])
    db.session.commit()


def url_for(iid):
    return f"https://bridge.example.com/sso/login?instance={iid}"


def query(body):
    return applied(services.query_instance, {"activity": "queryInstance", **body}, login_url_for=url_for)


def test_instances_are_queried_in_the_order_asked(seen):
    stored_instance("i1")
    stored_instance("i2", status=InstanceStatus.FROZEN)
    outcome = query({"instanceId": " i2 , i9,,i1 "})
    assert (outcome.message, outcome.instance_id) == ("success", "i2")
    assert outcome.extra == {"info": [
        {"instanceId": "i2", "appInfo": {"frontEndUrl": url_for("i2"), "memo": "status: FROZEN"}},
        {"instanceId": "i1", "appInfo": {"frontEndUrl": url_for("i1"), "memo": "status: ACTIVE"}}]}
    debug = query({"instanceId": "i9,i1", "testFlag": "1"})
    assert debug.extra == {"info": [
        {"instanceId": "i9", "appInfo": {"frontEndUrl": url_for("i9"), "memo": "debug"}},
        {"instanceId": "i1", "appInfo": {"frontEndUrl": url_for("i1"), "memo": "status: ACTIVE"}}]}


def test_a_query_of_the_most_and_longest_instance_ids_is_answered(seen):
    ids = [f"{n:064}" for n in range(100)]
    stored_instance(ids[-1])
    outcome = query({"instanceId": ",".join(ids)})
    assert [i["instanceId"] for i in outcome.extra["info"]] == [ids[-1]]


@pytest.mark.parametrize("instance_ids, answer", [
    ("i9", ("000003", "none of the instances exists")),
    (" , ,", ("000002", "instanceId must list 1 to 100 instance IDs of at most 64 characters")),
    (",".join(["i1"] * 101), ("000002", "instanceId must list 1 to 100 instance IDs of at most 64 characters")),
    ("i1," + "x" * 65, ("000002", "instanceId must list 1 to 100 instance IDs of at most 64 characters")),
    (",".join(["i1"] * 2167), ("000002", "instanceId is longer than 6499 characters")),  # 6,500 characters
])
def test_a_query_that_finds_nothing_or_lists_badly_is_refused(seen, instance_ids, answer):
    stored_instance("i1")
    assert refusal(services.query_instance, {"instanceId": instance_ids}, login_url_for=url_for) == answer


def refresh_body(**over) -> dict:
    return {"activity": "refreshInstance", "instanceId": "i1", "expireTime": "20300101120000", "testFlag": "0", **over}


def test_a_renewal_sets_the_expiry_order_product_and_quantity(seen):
    stored_instance(product_id="p-trial", seats=3, tenants=("t1", "t2"))
    outcome = applied(services.refresh_instance, refresh_body(scene="renewal", orderId="o2", productId="p-year",
                                                              linearValue="10", expireTime="20300101120000123"))
    assert (outcome.message, outcome.instance_id) == ("success (RENEWAL: expires 2030-01-01 12:00:00 UTC)", "i1")
    assert instance_state() == NEW | {"product_id": "p-year", "seats": 10, "last_order_id": "o2", "order_line_id": "l-i1",
                                      "expire": datetime(2030, 1, 1, 12, tzinfo=UTC)}
    assert seen == [("access", "t1", None, "instance_expired"), ("access", "t2", None, "instance_expired")]
    outcome = applied(services.refresh_instance, refresh_body(expireTime="20310202000000"))
    assert outcome.message == "success (refresh: expires 2031-02-02 00:00:00 UTC)"
    assert instance_state() == NEW | {"product_id": "p-year", "seats": 10, "last_order_id": "o2", "order_line_id": "l-i1",
                                      "expire": datetime(2031, 2, 2, tzinfo=UTC)}


@pytest.mark.parametrize("scene, requested, seats", [
    ("RENEWAL_CHANGE", 8, (8, None)), ("RENEWAL_CHANGE", None, (3, None)), ("RENEWAL", 8, (3, 8))])
def test_a_renewal_change_takes_the_quantity_of_the_last_allowed_check(seen, scene, requested, seats):
    stored_instance(seats=3, seats_requested=requested)
    applied(services.refresh_instance, refresh_body(scene=scene))
    i = get(Instance, "i1")
    assert (i.seats, i.seats_requested) == seats


@pytest.mark.parametrize("fn, body, what", [
    (services.refresh_instance, refresh_body(scene="TRIAL_TO_FORMAL"), "TRIAL_TO_FORMAL"),
    (services.refresh_instance, refresh_body(), "refresh"),
    (services.update_instance_status, {"instanceId": "i1", "status": "freeze"}, "FREEZE"),
    (services.release_instance, {"instanceId": "i1"}, "release"),
    (services.upgrade_instance, {"instanceId": "i1", "orderId": "o9", "productId": "p9", "amount": 9}, "upgrade"),
])
def test_a_debug_lifecycle_call_is_answered_and_changes_nothing(seen, fn, body, what):
    for instance_id in ("i1", "i-unknown"):  # the saved cases replay in any order, even after a release
        outcome = applied(fn, {**body, "instanceId": instance_id, "testFlag": "1"}) if instance_id != "i1" else None
        if outcome is None:
            stored_instance(product_id="p1", seats=3, seats_requested=5)
            outcome = applied(fn, {**body, "testFlag": "1"})
        assert (outcome.message, outcome.instance_id) == (f"success (debug call: {what}; nothing changed)",
                                                          instance_id)
    assert instance_state() == NEW | {"product_id": "p1", "seats": 3, "seats_requested": 5, "order_line_id": "l-i1"}
    assert seen == []


@pytest.mark.parametrize("fn, body", [
    (services.refresh_instance, refresh_body()),
    (services.update_instance_status, {"instanceId": "i1", "status": "UNFREEZE"}),
    (services.upgrade_instance, {"instanceId": "i1", "orderId": "o9"}),
    (services.change_instance_check, {"instanceId": "i1", "productInfo": {
        "productId": "p", "skuCode": "s", "productName": "n"}}),
])
def test_a_released_or_unknown_instance_is_not_found(seen, fn, body):
    kw = {"seats_count_users": True} if fn is services.change_instance_check else {}
    assert refusal(fn, {**body, "instanceId": "i9"}, **kw) == ("000003", "instance i9 does not exist")
    stored_instance(status=InstanceStatus.RELEASED)
    assert refusal(fn, body, **kw) == ("000003", "instance i1 was released")
    assert instance_state()["status"] == "RELEASED"
    assert seen == []


def test_freezing_and_unfreezing_an_instance(seen):
    stored_instance(tenants=("t1", "t2"))
    outcome = applied(services.update_instance_status, {"instanceId": "i1", "status": "FREEZE"})
    assert (outcome.message, outcome.instance_id) == ("success", "i1")
    assert instance_state()["status"] == "FROZEN"
    assert applied(services.update_instance_status, {"instanceId": "i1", "status": "unfreeze"}).message == "success"
    assert instance_state()["status"] == "ACTIVE"
    assert seen == [("access", "t1", None, "instance_frozen"), ("access", "t2", None, "instance_frozen")] * 2
    assert refusal(services.update_instance_status, {"instanceId": "i1", "status": "PAUSE"}) == (
        "000002", "status must be one of FREEZE, UNFREEZE")


def test_releasing_an_instance_once_and_again(seen):
    stored_instance(last_order_id="o1")
    outcome = applied(services.release_instance, {"instanceId": "i1", "orderId": ""})
    assert (outcome.message, outcome.instance_id) == ("success", "i1")
    assert instance_state() == NEW | {"status": "RELEASED", "released": True, "last_order_id": "o1",
                                      "order_line_id": "l-i1"}
    first = get(Instance, "i1").released_at
    assert seen == [("access", "t1", None, "instance_released")]
    assert applied(services.release_instance, {"instanceId": "i1", "orderId": "o2"}).message == "success"
    assert get(Instance, "i1").released_at == first
    assert instance_state()["last_order_id"] == "o1"
    assert seen == [("access", "t1", None, "instance_released")]
    assert refusal(services.release_instance, {"instanceId": "i9"}) == ("000003", "instance i9 does not exist")


def test_a_release_records_the_order_that_released(seen):
    stored_instance(last_order_id="o1")
    applied(services.release_instance, {"instanceId": "i1", "orderId": "o-release"})
    assert instance_state()["last_order_id"] == "o-release"


def test_an_upgrade_takes_the_new_order_and_the_product_fields_sent(seen):
    stored_instance(product_id="p1", sku_code="s1", seats=3)
    outcome = applied(services.upgrade_instance, {"instanceId": "i1", "orderId": "o2"})
    assert (outcome.message, outcome.instance_id) == ("success", "i1")
    assert instance_state() == NEW | {"product_id": "p1", "sku_code": "s1", "seats": 3, "last_order_id": "o2",
                                      "order_line_id": "l-i1"}
    applied(services.upgrade_instance, {"instanceId": "i1", "orderId": "o3", "productId": "p2", "skuCode": "s2",
                                        "productInfo": {"linearValue": 20}})
    assert instance_state() == NEW | {"product_id": "p2", "sku_code": "s2", "seats": 20, "last_order_id": "o3",
                                      "order_line_id": "l-i1"}
    assert seen == []
    assert refusal(services.upgrade_instance, {"instanceId": "i1"}) == ("000002", "orderId is missing")


def check_body(**info) -> dict:
    return {"activity": "changeInstanceCheck", "instanceId": "i1",
            "productInfo": {"productId": "p1", "skuCode": "sku-2", "productName": "Pro", **info}}


def authorised(tid, name, **kw):
    db.session.add(TenantUser(**{"tenant_id": tid, "user_name": name, "authorized": True, "enabled": True,
                                 "test_flag": False, "last_sync_ts": T1, **kw}))


def test_the_users_of_an_instance_are_the_live_authorised_production_users_of_its_tenants(seen):
    stored_instance(tenants=("t1", "t2"))
    stored_instance("i2", tenants=("t3",))
    authorised("t1", "a")
    authorised("t2", "b")
    authorised("t3", "other-instance")
    authorised("t1", "revoked", authorized=False)
    authorised("t1", "disabled", enabled=False)
    authorised("t1", "deleted", deleted_at=datetime.now(UTC))
    authorised("t1", "debug", test_flag=True)
    db.session.commit()
    assert services.authorised_users_of_instance("i1") == 2
    assert services.authorised_users_of_instance("i9") == 0


@pytest.mark.parametrize("info, count_users, answer, requested", [
    ({"linearValue": "2"}, True,
     ("000002", "quantity 2 is below the 3 users already authorised; revoke users before reducing seats"), None),
    ({"linearValue": "3"}, True, "success (change to sku-2, quantity 3)", 3),
    ({"linearValue": 2}, False, "success (change to sku-2, quantity 2)", None),
    ({}, True, "success (change to sku-2)", None),
    ({"linearValue": ""}, True, "success (change to sku-2)", None),
])
def test_a_change_at_renewal_may_not_go_below_the_users_in_use(seen, info, count_users, answer, requested):
    stored_instance(seats=5)
    for name in "abc":
        authorised("t1", name)
    db.session.commit()
    if isinstance(answer, tuple):
        assert refusal(services.change_instance_check, check_body(**info), seats_count_users=count_users) == answer
    else:
        outcome = applied(services.change_instance_check, check_body(**info), seats_count_users=count_users)
        assert (outcome.message, outcome.instance_id) == (answer, "i1")
    assert (get(Instance, "i1").seats, get(Instance, "i1").seats_requested) == (5, requested)


def test_a_change_check_of_an_instance_without_users_is_allowed(seen):
    stored_instance(tenants=())
    outcome = applied(services.change_instance_check, check_body(linearValue=0), seats_count_users=True)
    assert outcome.message == "success (change to sku-2, quantity 0)"
    assert get(Instance, "i1").seats_requested == 0


def test_a_debug_change_check_changes_nothing(seen):
    outcome = applied(services.change_instance_check, {**check_body(linearValue=1), "testFlag": "1",
                                                       "instanceId": "i9"}, seats_count_users=True)
    assert (outcome.message, outcome.instance_id) == ("success (debug call: change check; nothing changed)", "i9")
    assert all_rows(Instance) == []


@pytest.mark.parametrize("body, answer", [
    ({"productInfo": None}, ("000002", "productInfo is missing")),
    ({"productInfo": {"skuCode": "s", "productName": "n"}}, ("000002", "productId is missing")),
    ({"productInfo": {"productId": "p", "productName": "n"}}, ("000002", "skuCode is missing")),
    ({"productInfo": {"productId": "p", "skuCode": "s"}}, ("000002", "productName is missing")),
    ({"productInfo": {"productId": "p", "skuCode": "s", "productName": "n", "linearValue": "x"}},
     ("000002", "linearValue must be a whole number from 0 to 1000000000")),
])
def test_a_change_check_needs_the_product(seen, body, answer):
    stored_instance()
    full = {k: v for k, v in {"instanceId": "i1", **body}.items() if v is not None}
    assert refusal(services.change_instance_check, full, seats_count_users=True) == answer


@pytest.mark.parametrize("fn, body, answer", [
    (services.refresh_instance, refresh_body(expireTime="2030"), ("000002", "expireTime must be yyyyMMddHHmmss (UTC)")),
    (services.refresh_instance, refresh_body(scene="LATER"), ("000002", "scene must be one of " + ", ".join(
        services.REFRESH_SCENES))),
    (services.refresh_instance, refresh_body(linearValue="-3"),
     ("000002", "linearValue must be a whole number from 0 to 1000000000")),
    (services.release_instance, {}, ("000002", "instanceId is missing")),
    (services.refresh_instance, refresh_body(orderLineId=["l1"]), ("000002", "orderLineId must be a string")),
    (services.refresh_instance, refresh_body(orderId="o" * 65), ("000002", "orderId is longer than 64 characters")),
    (services.release_instance, {"instanceId": "i1", "orderLineId": ["l1"]},
     ("000002", "orderLineId must be a string")),
    (services.upgrade_instance, {"instanceId": "i1", "orderId": "o2", "orderLineId": ["l1"]},
     ("000002", "orderLineId must be a string")),
    (services.upgrade_instance, {"instanceId": "i1", "orderId": "o2", "skuCode": ["s"]},
     ("000002", "skuCode must be a string")),
    (services.new_instance, new_body(productId=["p"]), ("000002", "productId must be a string")),
    (services.new_instance, new_body(skuCode=["s"]), ("000002", "skuCode must be a string")),
])
def test_a_lifecycle_call_with_a_bad_field_is_refused(seen, fn, body, answer):
    stored_instance(seats=3)
    assert refusal(fn, body) == answer
    assert instance_state()["seats"] == 3
