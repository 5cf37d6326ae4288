"""The five kit interfaces as KooGallery would observe them, and what ends up stored."""

from __future__ import annotations

import json

import pytest

from keys import keyring
from keys.rsa import encrypt_client_secret
from tenants.models import Department, SyncCall, Tenant, TenantApp, TenantInstance, TenantUser
from tests import factories as f
from tests.helpers import code_of, ok, rows

# --- tenantSync --------------------------------------------------------------------------------


def test_tenant_sync_stores_tenant_and_order_link(app, kg):
    ok(kg.kit("tenantSync", f.tenant_sync()))
    [tenant] = rows(app, Tenant)
    assert (tenant.tenant_id, tenant.tenant_code, tenant.name) == (f.TENANT, "huawei", "华为测试企业")
    assert tenant.domain_name == "https://example.tenantaccount.com"
    assert [link.instance_id for link in rows(app, TenantInstance)] == ["inst-1"]


def test_answer_is_exact_json_with_body_sign(kg):
    response = kg.kit("tenantSync", f.tenant_sync())
    assert response.data == b'{"resultCode":"000000","resultMsg":"success"}'
    assert response.headers["Body-Sign"].startswith('sign_type="HMAC-SHA256", signature="')
    assert response.headers["X-Request-Id"]


def test_repeated_add_is_a_success_without_duplicates(app, kg):
    for _ in range(3):
        ok(kg.kit("tenantSync", f.tenant_sync()))
    assert len(rows(app, Tenant)) == 1
    assert len(rows(app, TenantInstance)) == 1


def test_second_order_links_the_same_tenant(app, kg):
    ok(kg.kit("tenantSync", f.tenant_sync()))
    ok(kg.kit("tenantSync", f.tenant_sync(instanceId="inst-2", orderId="CS2")))
    assert sorted(link.instance_id for link in rows(app, TenantInstance)) == ["inst-1", "inst-2"]
    assert len(rows(app, Tenant)) == 1


@pytest.mark.parametrize("given, stored", [
    ("example.tenantaccount.com", "https://example.tenantaccount.com"),
    ("https://Example.TenantAccount.com/", "https://example.tenantaccount.com"),
    ("https://idp.example.com/t/acme//", "https://idp.example.com/t/acme"),
])
def test_domain_name_is_normalised(app, kg, given, stored):
    ok(kg.kit("tenantSync", f.tenant_sync(domainName=given)))
    assert rows(app, Tenant)[0].domain_name == stored


@pytest.mark.parametrize("domain", [
    "http://example.tenantaccount.com", "https://127.0.0.1", "https://169.254.169.254/latest",
    "https://localhost:8443", "https://user:pw@example.com", "ftp://example.com", "https://example.com?x=1",
])
def test_insecure_or_internal_domain_is_refused(app, kg, domain):
    assert code_of(kg.kit("tenantSync", f.tenant_sync(domainName=domain))) == "000002"
    assert rows(app, Tenant) == []


def test_insecure_domain_is_allowed_for_the_local_simulator(make_app):
    from tests.helpers import BASIC_KEY, KIT_KEY
    from tests.koogallery import KooGallery

    app = make_app(ALLOW_INSECURE_IDP=True)
    kg = KooGallery(app.test_client(), KIT_KEY, BASIC_KEY)
    ok(kg.kit("tenantSync", f.tenant_sync(domainName="http://127.0.0.1:5001/t/acme")))
    assert rows(app, Tenant)[0].domain_name == "http://127.0.0.1:5001/t/acme"


def test_modify_changes_only_name_and_domain(app, kg):
    ok(kg.kit("tenantSync", f.tenant_sync()))
    ok(kg.kit("tenantSync", f.tenant_sync(flag=2, tenantCode="other", name="New name",
                                          domainName="https://new.example.com", timeStamp="20220414000000000")))
    tenant = rows(app, Tenant)[0]
    assert (tenant.name, tenant.domain_name, tenant.tenant_code) == ("New name", "https://new.example.com", "huawei")


def test_older_update_never_overwrites_newer(app, kg):
    ok(kg.kit("tenantSync", f.tenant_sync(name="Newer", timeStamp="20220415000000000")))
    body = ok(kg.kit("tenantSync", f.tenant_sync(flag=2, name="Older", timeStamp="20220414000000000")))
    assert "ignored" in body["resultMsg"]
    assert rows(app, Tenant)[0].name == "Newer"


def test_delete_marks_tenant_deleted_and_repeat_succeeds(app, kg):
    ok(kg.kit("tenantSync", f.tenant_sync(instanceId="")))
    for _ in range(2):
        ok(kg.kit("tenantSync", f.tenant_sync(instanceId="", flag=0, timeStamp="20220414000000000")))
    assert rows(app, Tenant)[0].deleted_at is not None


def test_delete_of_unknown_tenant_succeeds_and_blocks_a_late_older_add(app, kg):
    ok(kg.kit("tenantSync", f.tenant_sync(flag=0, timeStamp="20220415000000000")))
    ok(kg.kit("tenantSync", f.tenant_sync(flag=1, timeStamp="20220414000000000")))
    assert rows(app, Tenant)[0].deleted_at is not None


def test_unbinding_one_order_keeps_tenant_bound_by_another(app, kg):
    ok(kg.kit("tenantSync", f.tenant_sync()))
    ok(kg.kit("tenantSync", f.tenant_sync(instanceId="inst-2")))
    ok(kg.kit("tenantSync", f.tenant_sync(flag=0, instanceId="inst-1", timeStamp="20220414000000000")))
    assert rows(app, Tenant)[0].deleted_at is None
    assert [link.instance_id for link in rows(app, TenantInstance)] == ["inst-2"]
    ok(kg.kit("tenantSync", f.tenant_sync(flag=0, instanceId="inst-2", timeStamp="20220414000000001")))
    assert rows(app, Tenant)[0].deleted_at is not None


def test_readd_after_delete_restores_tenant(app, kg):
    ok(kg.kit("tenantSync", f.tenant_sync(instanceId="", flag=0, timeStamp="20220414000000000")))
    ok(kg.kit("tenantSync", f.tenant_sync(instanceId="", timeStamp="20220415000000000")))
    assert rows(app, Tenant)[0].deleted_at is None


def test_test_flag_data_is_kept_and_marked(app, kg):
    ok(kg.kit("tenantSync", f.tenant_sync(testFlag=1, instanceId="", orderId="")))
    tenant = rows(app, Tenant)[0]
    assert tenant.test_flag is True
    assert rows(app, TenantInstance) == []


def test_lenient_types_string_flags_and_numeric_ids(app, kg):
    ok(kg.kit("tenantSync", f.tenant_sync(flag="1", testFlag="0", tenantId=12345)))
    assert rows(app, Tenant)[0].tenant_id == "12345"


# --- applicationSync ---------------------------------------------------------------------------


@pytest.mark.parametrize("params", ["OAEP-SHA256-MGF1-SHA256", "OAEP-SHA256-MGF1-SHA1", "OAEP-SHA1-MGF1-SHA1"])
def test_application_sync_decrypts_and_stores_secret_encrypted(app, kg, rsa_key, params):
    ciphertext = encrypt_client_secret("s3cret-value", rsa_key[0].public_key(), params)
    ok(kg.kit("applicationSync", f.application_sync(ciphertext)))
    [stored] = rows(app, TenantApp)
    assert stored.client_id == "NzZeWuiJa91dPSRdZQChMazIh13AW"
    assert "s3cret-value" not in stored.client_secret_enc
    with app.app_context():
        assert keyring().data.decrypt(stored.client_secret_enc) == "s3cret-value"


def test_secret_never_reaches_the_audit(app, kg, rsa_key):
    ciphertext = encrypt_client_secret("s3cret-value", rsa_key[0].public_key())
    ok(kg.kit("applicationSync", f.application_sync(ciphertext)))
    [call] = rows(app, SyncCall)
    assert ciphertext not in call.body and "s3cret-value" not in call.body
    assert json.loads(call.body)["clientSecret"] == "[redacted]"


def test_secret_for_another_key_is_refused_and_nothing_stored(app, kg):
    from keys.rsa import generate_private_key

    other = generate_private_key().public_key()
    response = kg.kit("applicationSync", f.application_sync(encrypt_client_secret("x", other)))
    assert code_of(response) == "000101"
    assert "decrypt" in response.get_json()["resultMsg"]
    assert rows(app, TenantApp) == []


# A clientSecret that is there but does not decrypt is 000101 (Huawei's sample: "something wrong
# with appSecret"); an empty one is a missing mandatory field, refused as 000002 before decryption.
@pytest.mark.parametrize("garbage, code, reason", [
    ("not base64 !!", "000101", "clientSecret is not Base64"),
    ("c2hvcnQ=", "000101", "clientSecret is 5 bytes"),
    ("", "000002", "clientSecret is missing"),
])
def test_garbage_secret_is_refused(app, kg, garbage, code, reason):
    response = kg.kit("applicationSync", f.application_sync(garbage))
    assert code_of(response) == code
    assert reason in response.get_json()["resultMsg"]
    assert rows(app, TenantApp) == []


def test_application_sync_without_private_key_says_so(make_app, tmp_path):
    from tests.helpers import BASIC_KEY, KIT_KEY
    from tests.koogallery import KooGallery

    app = make_app(RSA_PRIVATE_KEY_FILE=str(tmp_path / "missing.pem"))
    response = KooGallery(app.test_client(), KIT_KEY, BASIC_KEY).kit("applicationSync", f.application_sync("abc"))
    assert response.get_json()["resultCode"] == "000101"
    assert "flask keys generate" in response.get_json()["resultMsg"]


def test_application_delete_forgets_the_secret(app, kg, rsa_key):
    ok(kg.kit("applicationSync", f.application_sync(encrypt_client_secret("x", rsa_key[0].public_key()))))
    ok(kg.kit("applicationSync", f.application_sync("", flag=0, timeStamp="20220414000000000")))
    [stored] = rows(app, TenantApp)
    assert stored.deleted_at is not None and stored.client_secret_enc is None


def test_application_sync_before_tenant_sync_is_stored(app, kg, rsa_key):
    ok(kg.kit("applicationSync", f.application_sync(encrypt_client_secret("x", rsa_key[0].public_key()))))
    ok(kg.kit("tenantSync", f.tenant_sync()))
    assert len(rows(app, TenantApp)) == 1 and len(rows(app, Tenant)) == 1


# --- authSync ----------------------------------------------------------------------------------


def test_auth_sync_adds_users_with_profile(app, kg):
    ok(kg.kit("authSync", f.auth_sync([
        f.user("zhangsan01", name="张三", role="admin", position="系统管理员", email="z@example.com"),
        f.user("lisi02", workPlace="南京", extension={"employeeType": 2, "entryDate": "2020-1-2"}),
    ])))
    users = {u.user_name: u for u in rows(app, TenantUser)}
    assert users["zhangsan01"].role == "admin" and users["zhangsan01"].name == "张三"
    assert users["lisi02"].employee_type == 2 and users["lisi02"].entry_date == "2020-1-2"
    assert all(u.authorized and u.enabled and u.deleted_at is None for u in users.values())


def test_auth_sync_user_list_as_json_string_is_accepted(app, kg):
    ok(kg.kit("authSync", f.auth_sync(json.dumps([f.user("u1")]))))
    assert [u.user_name for u in rows(app, TenantUser)] == ["u1"]


def test_cancel_authorisation_keeps_the_record_but_revokes(app, kg):
    ok(kg.kit("authSync", f.auth_sync([f.user("u1")])))
    ok(kg.kit("authSync", f.auth_sync([{"userName": "u1"}], flag=3, currentSyncTime="20220421000000000")))
    [user] = rows(app, TenantUser)
    assert user.authorized is False and user.deleted_at is None


def test_delete_user_and_repeat(app, kg):
    ok(kg.kit("authSync", f.auth_sync([f.user("u1")])))
    for _ in range(2):
        ok(kg.kit("authSync", f.auth_sync([{"userName": "u1"}], flag=0, currentSyncTime="20220421000000000")))
    [user] = rows(app, TenantUser)
    assert user.deleted_at is not None


def test_a_user_sent_disabled_is_stored_disabled(app, kg):
    ok(kg.kit("authSync", f.auth_sync([f.user("u1", enable="false"), f.user("u2")])))
    assert {u.user_name: u.enabled for u in rows(app, TenantUser)} == {"u1": False, "u2": True}


def test_older_auth_batch_does_not_overwrite_newer(app, kg):
    ok(kg.kit("authSync", f.auth_sync([{"userName": "u1"}], flag=3, currentSyncTime="20220422000000000")))
    body = ok(kg.kit("authSync", f.auth_sync([f.user("u1")], currentSyncTime="20220421000000000")))
    assert "ignored" in body["resultMsg"]
    assert rows(app, TenantUser)[0].authorized is False


def test_500_users_in_one_call(app, kg):
    ok(kg.kit("authSync", f.auth_sync([f.user(f"user{i:03d}") for i in range(500)])))
    assert len(rows(app, TenantUser)) == 500


def test_501_users_is_refused_and_nothing_stored(app, kg):
    assert code_of(kg.kit("authSync", f.auth_sync([f.user(f"user{i:03d}") for i in range(501)]))) == "000002"
    assert rows(app, TenantUser) == []


def test_one_bad_user_refuses_the_whole_batch(app, kg):
    response = kg.kit("authSync", f.auth_sync([f.user("good"), f.user("bad", enable="maybe")]))
    assert code_of(response) == "000002"
    assert "userList[1].enable" in response.get_json()["resultMsg"]
    assert rows(app, TenantUser) == []


def test_same_user_name_in_two_tenants_are_two_users(app, kg):
    ok(kg.kit("authSync", f.auth_sync([f.user("admin")])))
    ok(kg.kit("authSync", f.auth_sync([f.user("admin")], tenantId="other-tenant")))
    assert len(rows(app, TenantUser, user_name="admin")) == 2


# --- departments -------------------------------------------------------------------------------


def test_single_org_sync_add_modify_delete(app, kg):
    ok(kg.kit("singleOrgSync", f.single_org_sync("D1")))
    ok(kg.kit("singleOrgSync", f.single_org_sync("D2", parentCode="D1")))
    ok(kg.kit("singleOrgSync", f.single_org_sync("D2", flag=2, orgName="Renamed", parentCode="D1", timeStamp="20220414000000000")))
    ok(kg.kit("singleOrgSync", f.single_org_sync("D1", flag=0, timeStamp="20220414000000000")))
    orgs = {o.org_code: o for o in rows(app, Department)}
    assert orgs["D2"].org_name == "Renamed" and orgs["D2"].parent_code == "D1"
    assert orgs["D1"].deleted_at is not None


def test_single_org_sync_with_duplicate_identical_keys_as_in_huawei_example(app, kg, client):
    from tests.helpers import KIT_KEY
    from tests.koogallery import kit_headers

    raw = ('{"instanceId":"inst-1","tenantId":"TENANT","instanceId":"inst-1","orgCode":"D9","orgName":"研发部",'
           '"parentCode":"","flag":1,"testFlag":0,"timeStamp":"20220413093539534"}').replace("TENANT", f.TENANT)
    response = client.post("/produce/produceAPI/v2/singleOrgSync", data=raw.encode(),
                           headers=kit_headers(KIT_KEY, json.loads(raw), raw=raw))
    ok(response)
    assert rows(app, Department)[0].org_name == "研发部"


@pytest.mark.parametrize("org_info", [
    [{"orgCode": "A", "orgName": "Alpha", "parentCode": ""}, {"orgCode": "B", "OrgName": "Beta", "parentCode": "A"}],
    json.dumps([{"orgCode": "A", "orgName": "Alpha"}, {"orgCode": "B", "name": "Beta", "parentCode": "A"}]),
    '[{orgCode:"A", orgName:"Alpha", parentCode:""},{orgCode:"B", orgName:"Beta", parentCode:"A"}]',
])
def test_all_org_sync_parses_every_documented_shape(app, kg, org_info):
    ok(kg.kit("allOrgSync", f.all_org_sync(org_info)))
    orgs = {o.org_code: o for o in rows(app, Department)}
    assert (orgs["A"].org_name, orgs["B"].org_name, orgs["B"].parent_code) == ("Alpha", "Beta", "A")


def test_all_org_sync_v1_field_name_is_accepted(app, kg):
    body = f.all_org_sync(None)
    del body["orgInfoList"]
    body["orgInfo"] = json.dumps([{"orgCode": "X", "name": "Xray"}])
    ok(kg.kit("allOrgSync", body))
    assert rows(app, Department)[0].org_name == "Xray"


def test_all_org_sync_replaces_the_tenants_departments(app, kg):
    ok(kg.kit("allOrgSync", f.all_org_sync([{"orgCode": "A", "orgName": "A"}, {"orgCode": "B", "orgName": "B"}])))
    ok(kg.kit("allOrgSync", f.all_org_sync([{"orgCode": "B", "orgName": "B2"}, {"orgCode": "C", "orgName": "C"}],
                                           timeStamp="20220414000000000")))
    live = {o.org_code: o.org_name for o in rows(app, Department) if o.deleted_at is None}
    assert live == {"B": "B2", "C": "C"}


def test_all_org_sync_leaves_other_tenants_alone(app, kg):
    ok(kg.kit("allOrgSync", f.all_org_sync([{"orgCode": "A", "orgName": "A"}], tenantId="other")))
    ok(kg.kit("allOrgSync", f.all_org_sync([{"orgCode": "B", "orgName": "B"}])))
    assert rows(app, Department, tenant_id="other")[0].deleted_at is None


# --- audit -------------------------------------------------------------------------------------


def test_every_call_is_audited_with_outcome(app, kg):
    ok(kg.kit("tenantSync", f.tenant_sync()))
    kg.kit("tenantSync", f.tenant_sync(domainName="ftp://x"))
    calls = rows(app, SyncCall)
    assert [(c.interface, c.result_code, c.tenant_id) for c in calls] == [
        ("kit:tenantSync", "000000", f.TENANT), ("kit:tenantSync", "000002", f.TENANT)]
    assert calls[0].signature_form == "primary/canonical"
    assert calls[0].nonce and calls[0].duration_ms >= 0
