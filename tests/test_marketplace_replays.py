"""The marketplace as it really behaves: saved debug cases replayed in any order forever, identical
re-sends of calls whose answer was lost, renewal changes, and older calls arriving late."""

from __future__ import annotations

import json
import random

import pytest

from extensions import db
from keys.rsa import encrypt_client_secret
from tenants.models import Department, Instance, SeenNonce, SyncCall, Tenant, TenantApp, TenantInstance, TenantUser
from tests import factories as f
from tests.helpers import code_of, ok, rows

OLD, NEW = "20220401000000000", "20220402000000000"


def snapshot(app) -> dict:
    """Every production row, as plain values (what a debug call must never change)."""
    with app.app_context():
        out = {}
        for model in (Tenant, TenantApp, TenantUser, Department, Instance, TenantInstance):
            table = model.__table__
            out[table.name] = sorted(
                (tuple(str(v) for k, v in row._mapping.items() if k not in ("updated_at",)))
                for row in db.session.execute(db.select(table)))
        return out


def saved_debug_cases(rsa_key) -> list[tuple[str, dict]]:
    """One case per interface, fixed bodies with testFlag 1, on the production tenant's ids."""
    secret = encrypt_client_secret("debug-secret", rsa_key[0].public_key())
    debug = {"testFlag": 1}
    return [
        ("tenantSync", f.tenant_sync(flag=1, name="调试企业", domainName="https://debug.example.com", **debug)),
        ("applicationSync", f.application_sync(secret, clientId="debug-client", **debug)),
        ("authSync", f.auth_sync([f.user("alice", enable="false")], flag=0, **debug)),
        ("singleOrgSync", f.single_org_sync("D1", flag=0, **debug)),
        ("allOrgSync", f.all_org_sync([{"orgCode": "DX", "orgName": "调试部"}], **debug)),
        ("basic", f.new_instance(businessId="debug-inst", orderId="DEBUG-ORDER", orderLineId="DEBUG-LINE",
                                 testFlag="1")),
        ("basic", {"activity": "queryInstance", "instanceId": "typed-by-hand", "testFlag": "1"}),
        ("basic", {"activity": "refreshInstance", "instanceId": "inst-1", "orderId": "R1", "orderLineId": "R1-1",
                   "scene": "RENEWAL", "expireTime": "20200101000000", "testFlag": "1"}),
        ("basic", {"activity": "updateInstanceStatus", "instanceId": "inst-1", "status": "FREEZE", "testFlag": "1"}),
        ("basic", {"activity": "releaseInstance", "instanceId": "inst-1", "testFlag": "1"}),
        ("basic", {"activity": "upgradeInstance", "instanceId": "never-seen", "orderId": "U1", "orderLineId": "U1-1",
                   "testFlag": "1"}),
        ("basic", {"activity": "changeInstanceCheck", "instanceId": "released-or-not", "testFlag": "1",
                   "productInfo": {"productId": "P1", "skuCode": "S1", "linearValue": 1, "productName": "n"}}),
    ]


@pytest.fixture
def production(kg, rsa_key):
    ok(kg.basic(f.new_instance(businessId="inst-1", testFlag=None)))
    ok(kg.kit("tenantSync", f.tenant_sync()))
    ok(kg.kit("applicationSync", f.application_sync(encrypt_client_secret("prod-secret", rsa_key[0].public_key()))))
    ok(kg.kit("authSync", f.auth_sync([f.user("alice"), f.user("bob")])))
    ok(kg.kit("allOrgSync", f.all_org_sync([{"orgCode": "D1", "orgName": "研发部"}])))
    return kg


def send(kg, interface, body, **sign):
    return kg.basic(body, **sign) if interface == "basic" else kg.kit(interface, body, **sign)


def test_saved_debug_cases_replayed_in_any_order_always_succeed_and_leave_production_alone(app, production,
                                                                                             rsa_key):
    before = snapshot(app)
    cases = saved_debug_cases(rsa_key)
    rng = random.Random(20261201)
    for _ in range(20):
        rng.shuffle(cases)
        for interface, body in cases:
            answer = ok(send(production, interface, body))  # fresh nonce and signature, as the marketplace
            if body.get("activity") == "newInstance":
                assert answer["instanceId"] == "debug-inst"
            if body.get("activity") == "queryInstance":
                assert answer["info"][0]["appInfo"]["frontEndUrl"].endswith("instance=typed-by-hand")
    after = snapshot(app)
    for table in ("kg_tenant", "kg_app", "kg_user", "kg_org", "kg_tenant_instance"):
        assert after[table] == before[table], table
    production_instances = [r for r in after["kg_instance"] if "debug-inst" not in r]
    assert production_instances == before["kg_instance"]
    debug_calls = rows(app, SyncCall, debug=True)
    assert len(debug_calls) == 20 * len(cases) and all(c.result_code == "000000" for c in debug_calls)


def test_debug_kit_data_is_stored_apart_for_the_sellers_test_login(app, kg, rsa_key):
    body = f.tenant_sync(tenantId="seller-test", tenantCode="seller", instanceId="", testFlag=1)
    ok(kg.kit("tenantSync", body))
    [tenant] = rows(app, Tenant)
    assert tenant.test_flag is True and tenant.domain_name == "https://example.tenantaccount.com"
    # A production call for the same tenant takes the row over; a later debug call cannot take it back.
    ok(kg.kit("tenantSync", {**body, "testFlag": 0, "name": "真实企业", "timeStamp": "20990101000000000"}))
    ok(kg.kit("tenantSync", {**body, "name": "调试", "timeStamp": "20990102000000000"}))
    [tenant] = rows(app, Tenant)
    assert (tenant.test_flag, tenant.name) == (False, "真实企业")


# --- identical re-sends --------------------------------------------------------------------------


def test_identical_resend_gets_the_first_answer_and_applies_nothing_twice(app, kg):
    body = f.new_instance(businessId="first-business-id", testFlag=None)
    first = ok(kg.basic(body, nonce="lost-answer-nonce-1"))
    second = ok(kg.basic(body, nonce="lost-answer-nonce-1"))  # fresh timestamp and signature
    assert second == first and first["instanceId"] == "first-business-id"
    assert len(rows(app, Instance)) == 1
    assert [c.result_msg.startswith("re-send") for c in rows(app, SyncCall)] == [False, True]


def test_same_nonce_with_another_body_or_interface_is_refused(app, kg):
    ok(kg.kit("tenantSync", f.tenant_sync(), nonce="N" * 32))
    assert code_of(kg.kit("tenantSync", f.tenant_sync(name="另一个"), nonce="N" * 32)) == "000001"
    assert code_of(kg.kit("singleOrgSync", f.single_org_sync("D1"), nonce="N" * 32)) == "000001"
    [tenant] = rows(app, Tenant)
    assert tenant.name == "华为测试企业" and rows(app, Department) == []


def test_resend_of_a_kit_call_repeats_its_answer(app, kg):
    body = f.auth_sync([f.user("u1")])
    first = ok(kg.kit("authSync", body, nonce="A" * 40))
    assert ok(kg.kit("authSync", body, nonce="A" * 40)) == first
    with app.app_context():
        stored = json.loads(db.session.get(SeenNonce, "A" * 40).answer)
    assert stored == first


# --- apply only if newer, every interface ---------------------------------------------------------


def _newer_then_older(interface, flag, rsa_key):
    secret = encrypt_client_secret("s", rsa_key[0].public_key())
    if interface == "tenantSync":
        def make(ts, name):
            return f.tenant_sync(flag=flag, timeStamp=ts, name=name)
        return make, lambda app: [(t.name, t.deleted_at is None) for t in rows(app, Tenant)]
    if interface == "applicationSync":
        def make(ts, name):
            return f.application_sync(secret, flag=flag, timeStamp=ts, clientId=name)
        return make, lambda app: [(a.client_id, a.deleted_at is None) for a in rows(app, TenantApp)]
    if interface == "authSync":
        def make(ts, name):
            return f.auth_sync([f.user("u1", name=name)], flag=flag, currentSyncTime=ts)
        return make, lambda app: [(u.name, u.authorized, u.deleted_at is None) for u in rows(app, TenantUser)]
    if interface == "singleOrgSync":
        def make(ts, name):
            return f.single_org_sync("D1", flag=flag, timeStamp=ts, orgName=name)
        return make, lambda app: [(d.org_name, d.deleted_at is None) for d in rows(app, Department)]
    raise AssertionError(interface)


@pytest.mark.parametrize(("interface", "flag"), [
    ("tenantSync", 1), ("tenantSync", 2), ("tenantSync", 0),
    ("applicationSync", 1), ("applicationSync", 2), ("applicationSync", 0),
    ("authSync", 1), ("authSync", 2), ("authSync", 3), ("authSync", 0),
    ("singleOrgSync", 1), ("singleOrgSync", 2), ("singleOrgSync", 0),
])
def test_an_older_call_never_overwrites_a_newer_one(app, kg, rsa_key, interface, flag):
    make, state = _newer_then_older(interface, flag, rsa_key)
    ok(kg.kit(interface, {**make("20220101000000000", "base"), "flag": 1}))
    ok(kg.kit(interface, make(NEW, "newer")))
    expected = state(app)
    # The older call of every other flag must not change what the newer one left.
    for older_flag in {1, 2, 0} | ({3} if interface == "authSync" else set()):
        older = {**make(OLD, "older"), "flag": older_flag}
        assert "ignored" in ok(kg.kit(interface, older))["resultMsg"]
        assert state(app) == expected, older_flag


def test_an_older_full_department_list_adds_nothing_back(app, kg):
    ok(kg.kit("allOrgSync", f.all_org_sync([{"orgCode": c, "orgName": c} for c in "ABC"], timeStamp=NEW)))
    ok(kg.kit("allOrgSync", f.all_org_sync([{"orgCode": c, "orgName": c} for c in "ABCD"], timeStamp=OLD)))
    live = sorted(d.org_code for d in rows(app, Department) if d.deleted_at is None)
    assert live == ["A", "B", "C"]


def test_a_newer_full_list_removes_what_it_leaves_out(app, kg):
    ok(kg.kit("allOrgSync", f.all_org_sync([{"orgCode": c, "orgName": c} for c in "ABCD"], timeStamp=OLD)))
    ok(kg.kit("allOrgSync", f.all_org_sync([{"orgCode": c, "orgName": c} for c in "AB"], timeStamp=NEW)))
    live = sorted(d.org_code for d in rows(app, Department) if d.deleted_at is None)
    assert live == ["A", "B"]


# --- renewal changes and the V2 lifecycle ----------------------------------------------------------


def _check(instance_id="inst-1", linear=None, **over):
    info = {"productId": "P-YEAR", "skuCode": "SKU-2", "productName": "按年"}
    if linear is not None:
        info["linearValue"] = linear
    return {"activity": "changeInstanceCheck", "instanceId": instance_id, "productInfo": info, **over}


def test_change_instance_check_allows_by_default_and_knows_its_instances(app, kg):
    ok(kg.basic(f.new_instance(businessId="inst-1", testFlag=None)))
    assert "SKU-2" in ok(kg.basic(_check(linear=1)))["resultMsg"]
    assert code_of(kg.basic(_check("nobody"))) == "000003"
    assert code_of(kg.basic({**_check(), "productInfo": "not an object"})) == "000002"
    assert code_of(kg.basic({**_check(), "productInfo": {"skuCode": "S"}})) == "000002"
    assert [c.interface for c in rows(app, SyncCall)][-1] == "basic:changeInstanceCheck"


def test_with_seats_a_change_below_the_authorised_users_is_refused_and_seats_are_enforced(make_app, rsa_key):
    from tests.helpers import BASIC_KEY, KIT_KEY
    from tests.koogallery import KooGallery

    app = make_app(SEATS_FROM_LINEAR_VALUE=True)
    kg = KooGallery(app.test_client(), KIT_KEY, BASIC_KEY)
    ok(kg.basic(f.new_instance(businessId="inst-1", testFlag=None, linearValue=5)))
    ok(kg.kit("tenantSync", f.tenant_sync()))
    ok(kg.kit("authSync", f.auth_sync([f.user("u1"), f.user("u2"), f.user("u3")])))
    refused = kg.basic(_check(linear=2)).get_json()
    assert refused["resultCode"] != "000000" and "3 users" in refused["resultMsg"]
    ok(kg.basic(_check(linear=3)))
    ok(kg.basic({"activity": "refreshInstance", "instanceId": "inst-1", "orderId": "R2", "orderLineId": "R2-1",
                 "scene": "RENEWAL_CHANGE", "expireTime": "20991231000000000"}))
    [instance] = rows(app, Instance)
    assert instance.seats == 3 and instance.expire_time.year == 2099


@pytest.mark.parametrize("scene", ["TRIAL_TO_FORMAL", "RENEWAL", "UNSUBSCRIBE_RENEWAL_PERIOD", "RENEWAL_CHANGE"])
def test_every_refresh_scene_with_either_expire_time_form(app, kg, scene):
    ok(kg.basic(f.new_instance(businessId="inst-1", testFlag=None)))
    body = {"activity": "refreshInstance", "instanceId": "inst-1", "orderId": "R", "orderLineId": "R-1",
            "scene": scene, "productId": "P-MONTH", "expireTime": "20221124023618256"}
    assert scene in ok(kg.basic(body))["resultMsg"]
    ok(kg.basic({**body, "expireTime": "20231124023618"}))
    [instance] = rows(app, Instance)
    assert (instance.product_id, instance.expire_time.year) == ("P-MONTH", 2023)
    assert code_of(kg.basic({**body, "scene": "SOMETHING_ELSE"})) == "000002"


def test_upgrade_v2_body_needs_no_product_fields(app, kg):
    ok(kg.basic(f.new_instance(businessId="inst-1", testFlag=None)))
    ok(kg.basic({"activity": "upgradeInstance", "instanceId": "inst-1", "orderId": "UP-1", "orderLineId": "UP-1-1"}))
    assert rows(app, Instance)[0].last_order_id == "UP-1"


# --- bodies that belong to another interface, malformed basic bodies -------------------------------


def test_a_body_of_another_interface_is_refused_and_changes_nothing(app, kg, rsa_key):
    ok(kg.kit("tenantSync", f.tenant_sync()))
    app_delete = f.application_sync(encrypt_client_secret("s", rsa_key[0].public_key()), flag=0,
                                    timeStamp="20991231000000000")
    assert code_of(kg.kit("tenantSync", app_delete)) == "000002"
    assert rows(app, Tenant)[0].deleted_at is None


@pytest.mark.parametrize("activity", [{"a": 1}, ["newInstance"], 7, None])
def test_a_basic_call_whose_activity_is_not_a_word_is_invalid_not_internal(app, kg, activity):
    assert code_of(kg.basic({**f.new_instance(), "activity": activity})) == "000002"


def test_a_refused_unsigned_call_keeps_a_small_fixed_record(app, client):
    big = json.dumps({"tenantId": "x", "junk": "y" * 1_000_000})
    response = client.post("/produce/produceAPI/v2/tenantSync", data=big,
                           headers={"Content-Type": "application/json", "x-sign": "0" * 64,
                                    "x-timestamp": str(__import__("time").time_ns() // 1_000_000), "x-nonce": "n1"})
    assert response.get_json()["resultCode"] == "000001"
    [call] = rows(app, SyncCall)
    assert len(call.body) < 200 and "sha256" in call.body and rows(app, Tenant) == []


def test_deleting_a_tenant_wipes_its_client_secret(app, kg, rsa_key):
    ok(kg.kit("tenantSync", f.tenant_sync(instanceId="")))
    ok(kg.kit("applicationSync", f.application_sync(encrypt_client_secret("s", rsa_key[0].public_key()))))
    ok(kg.kit("tenantSync", f.tenant_sync(flag=0, instanceId="", timeStamp="20991231000000000")))
    [stored] = rows(app, TenantApp)
    assert stored.client_secret_enc is None
