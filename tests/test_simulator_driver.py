"""The simulator's sync driver: signatures against the spec's worked examples (§3.5), and the
exact calls it puts on the wire, caught with `responses` (strict: unmatched calls fail)."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from keys.rsa import decrypt_client_secret, public_key_for_koogallery
from simulator.clock import SyncClock, sync_time_after
from simulator.driver import CANCEL, KooGalleryDriver, SyncCallError
from simulator.seed import User, load_seed
from simulator.signing import basic_query, canonical_json, kit_headers
from tests import spec_examples as spec
from tests.koogallery import basic_query as reference_basic_query
from tests.koogallery import kit_headers as reference_kit_headers

SEED = load_seed()
HUASHAN = SEED.tenant("huashan")
BRIDGE = "http://bridge.test"
KIT, BASIC = "kit-key-for-driver-tests", "basic-key-for-driver-tests"
OK = {"resultCode": "000000", "resultMsg": "success"}


def test_kit_signature_matches_the_specs_worked_example():
    body = json.loads(spec.TENANT_SYNC_RAW)
    assert canonical_json(body) == spec.TENANT_SYNC_CANONICAL
    headers = kit_headers(spec.KEY, body, nonce=spec.NONCE, timestamp=spec.TS)
    assert headers == {"x-sign": spec.KIT_SIGNATURE, "x-timestamp": spec.TS, "x-nonce": spec.NONCE}


def test_basic_signature_matches_the_specs_worked_example():
    query = basic_query(spec.KEY, spec.NEW_INSTANCE, nonce=spec.NONCE, timestamp=spec.TS)
    assert query == {"signature": spec.BASIC_SIGNATURE, "timestamp": spec.TS, "nonce": spec.NONCE}


def test_canonical_json_drops_top_level_nulls_keeps_nested_order_and_raw_utf8():
    body = {"b": None, "z": {"y": 1, "x": 2}, "a": "华为", "l": [3, 1]}
    assert canonical_json(body) == '{"a":"华为","l":[3,1],"z":{"y":1,"x":2}}'


def test_sync_stamps_are_yyyymmddhhmmssSSS_in_utc8_and_always_increase():
    assert sync_time_after(None, 1649813739.534) == "20220413093539534"
    assert sync_time_after("20220413093539534", 1649813739.534) == "20220413093539535"
    assert sync_time_after("20991231235959999", 1649813739.534) == "21000101000000000"
    clock = SyncClock(now=lambda: 1649813739.534)
    stamps = [clock() for _ in range(5)]
    assert stamps == sorted(set(stamps)) and len(stamps[0]) == 17


# --- what goes on the wire -------------------------------------------------------------------------


@pytest.fixture
def bridge():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def driver(rsa_key):
    return KooGalleryDriver(BRIDGE, kit_access_key=KIT, basic_access_key=BASIC, produce_path="/produce",
                            app_id=SEED.app_id, bridge_public_key=public_key_for_koogallery(rsa_key[0]))


def kit_call(bridge, interface: str, answer: dict = OK, status: int = 200):
    bridge.add(responses.POST, f"{BRIDGE}/produce/produceAPI/v2/{interface}", json=answer, status=status)


def sent(call) -> dict:
    return json.loads(call.request.body)


def assert_kit_signed(call) -> None:
    """Recomputed by the tests' own KooGallery signer (tests/koogallery.py), over the body received."""
    body, headers = sent(call), call.request.headers
    expected = reference_kit_headers(KIT, body, nonce=headers["x-nonce"], timestamp=headers["x-timestamp"])
    assert headers["x-sign"] == expected["x-sign"]
    assert headers["Content-Type"] == "application/json"
    assert len(headers["x-nonce"]) == 64


def test_tenant_sync_sends_the_spec_body_signed_in_headers(bridge, driver):
    kit_call(bridge, "tenantSync")
    assert driver.tenant_sync(HUASHAN, "http://sim.test/t/huashan", instance_id="i-1", order_id="o-1") == OK
    call = bridge.calls[0]
    assert_kit_signed(call)
    body = sent(call)
    assert {k: v for k, v in body.items() if k != "timeStamp"} == {
        "instanceId": "i-1", "orderId": "o-1", "tenantId": HUASHAN.tenant_id, "tenantCode": "huashan",
        "name": "华山科技有限公司", "domainName": "http://sim.test/t/huashan", "flag": 1, "testFlag": 0}
    assert len(body["timeStamp"]) == 17 and body["timeStamp"].isdigit()
    assert "华山".encode() in call.request.body  # raw UTF-8, as Huawei's Jackson writes it


def test_application_sync_encrypts_the_secret_for_the_bridges_key(bridge, driver, rsa_key):
    kit_call(bridge, "applicationSync")
    driver.application_sync(HUASHAN)
    body = sent(bridge.calls[0])
    assert_kit_signed(bridge.calls[0])
    assert body["appId"] == SEED.app_id and body["clientId"] == HUASHAN.client_id and body["flag"] == 1
    assert body["clientSecret"] != HUASHAN.client_secret
    assert decrypt_client_secret(body["clientSecret"], rsa_key[0]) == (HUASHAN.client_secret,
                                                                       "OAEP-SHA256-MGF1-SHA256")


def test_application_sync_without_a_public_key_says_so(bridge):
    driver = KooGalleryDriver(BRIDGE, kit_access_key=KIT, basic_access_key=BASIC, app_id=SEED.app_id)
    with pytest.raises(ValueError, match="SIM_BRIDGE_PUBLIC_KEY"):
        driver.application_sync(HUASHAN)
    assert len(bridge.calls) == 0


def test_all_org_sync_sends_the_department_list_as_a_json_string(bridge, driver):
    kit_call(bridge, "allOrgSync")
    driver.all_org_sync(HUASHAN)
    body = sent(bridge.calls[0])
    assert isinstance(body["orgInfoList"], str)
    assert json.loads(body["orgInfoList"]) == [
        {"orgCode": "HS000", "orgName": "华山科技", "parentCode": ""},
        {"orgCode": "HS100", "orgName": "研发部", "parentCode": "HS000"},
        {"orgCode": "HS110", "orgName": "平台组", "parentCode": "HS100"},
        {"orgCode": "HS200", "orgName": "销售部", "parentCode": "HS000"}]


def test_single_org_sync(bridge, driver):
    kit_call(bridge, "singleOrgSync")
    driver.single_org_sync(HUASHAN, HUASHAN.departments[2], flag=2, instance_id="i-1")
    body = sent(bridge.calls[0])
    assert (body["orgCode"], body["orgName"], body["parentCode"], body["flag"], body["instanceId"]) == (
        "HS110", "平台组", "HS100", 2, "i-1")


def test_auth_sync_sends_enable_as_a_string_and_increasing_sync_times(bridge, driver):
    kit_call(bridge, "authSync")
    kit_call(bridge, "authSync")
    driver.auth_sync(HUASHAN, [HUASHAN.user("zhangsan"), HUASHAN.user("wangwu")])
    driver.auth_sync(HUASHAN, [HUASHAN.user("lisi")], flag=CANCEL)
    first, second = sent(bridge.calls[0]), sent(bridge.calls[1])
    assert first["userList"][0] == {"userName": "zhangsan", "name": "张三", "orgCode": "HS000", "role": "admin",
                                    "enable": "true", "position": "系统管理员", "mobile": "13800000001",
                                    "email": "zhangsan@huashan.example"}
    assert first["userList"][1]["enable"] == "false" and first["flag"] == 1 and second["flag"] == 3
    assert first["appId"] == SEED.app_id
    assert first["currentSyncTime"] == first["timeStamp"] and len(first["currentSyncTime"]) == 17
    assert second["currentSyncTime"] > first["currentSyncTime"]


def test_auth_sync_sends_at_most_500_users_per_call(bridge, driver):
    kit_call(bridge, "authSync")
    users = [User(f"u{i:04d}", f"User {i}", "x", "user", True, "HS000", True) for i in range(501)]
    driver.auth_sync(HUASHAN, users)
    assert [len(sent(c)["userList"]) for c in bridge.calls] == [500, 1]


def test_basic_calls_are_signed_in_the_query(bridge, driver):
    bridge.add(responses.POST, f"{BRIDGE}/produce", json={**OK, "instanceId": HUASHAN.order.business_id})
    answer = driver.new_instance(HUASHAN.order)
    assert answer["instanceId"] == HUASHAN.order.business_id
    call = bridge.calls[0]
    body = sent(call)
    assert body == {"activity": "newInstance", "businessId": HUASHAN.order.business_id,
                    "orderId": HUASHAN.order.order_id, "orderLineId": HUASHAN.order.order_line_id,
                    "productId": HUASHAN.order.product_id, "skuCode": HUASHAN.order.sku_code}
    query = {k: v[0] for k, v in parse_qs(urlsplit(call.request.url).query).items()}
    assert query["signature"] == reference_basic_query(BASIC, body, nonce=query["nonce"],
                                                       timestamp=query["timestamp"])["signature"]
    assert call.request.headers["Content-Type"] == "application/json;charset=utf8"


def test_each_basic_activity_sends_its_fields(bridge, driver):
    bridge.add(responses.POST, f"{BRIDGE}/produce", json=OK)
    driver.query_instance(["i-1", "i-2"])
    driver.refresh_instance("i-1", "20301231235959", order_id="CSNEW", order_line_id="CSNEW-000001")
    driver.update_instance_status("i-1", "FREEZE")
    driver.release_instance("i-1")
    driver.upgrade_instance("i-1", order_id="CSUP", sku_code="sku-2")
    bodies = [sent(c) for c in bridge.calls]
    assert bodies == [
        {"activity": "queryInstance", "instanceId": "i-1,i-2"},
        {"activity": "refreshInstance", "instanceId": "i-1", "orderId": "CSNEW", "orderLineId": "CSNEW-000001",
         "scene": "RENEWAL", "expireTime": "20301231235959"},
        {"activity": "updateInstanceStatus", "instanceId": "i-1", "status": "FREEZE"},
        {"activity": "releaseInstance", "instanceId": "i-1"},
        {"activity": "upgradeInstance", "instanceId": "i-1", "orderId": "CSUP", "orderLineId": "CSUP-000001",
         "skuCode": "sku-2"},
    ]
    with pytest.raises(ValueError):
        driver.update_instance_status("i-1", "PAUSE")


def test_a_refusal_raises_with_the_result_code_unless_asked_not_to(bridge, driver, rsa_key):
    kit_call(bridge, "tenantSync", {"resultCode": "000001", "resultMsg": "signature mismatch"})
    with pytest.raises(SyncCallError, match="000001") as caught:
        driver.tenant_sync(HUASHAN, "http://sim.test/t/huashan")
    assert caught.value.result_code == "000001" and caught.value.call == "tenantSync"
    lenient = KooGalleryDriver(BRIDGE, kit_access_key=KIT, basic_access_key=BASIC, raise_on_error=False)
    assert lenient.tenant_sync(HUASHAN, "x")["resultCode"] == "000001"


@pytest.mark.parametrize("status, body, message", [
    (404, "not here", "HTTP 404"), (200, "<html>", "not JSON"), (200, "[1]", "not a JSON object"),
])
def test_a_broken_answer_raises_a_clear_error(bridge, driver, status, body, message):
    bridge.add(responses.POST, f"{BRIDGE}/produce/produceAPI/v2/tenantSync", body=body, status=status)
    with pytest.raises(SyncCallError, match=message):
        driver.tenant_sync(HUASHAN, "x")


def test_no_answer_at_all_raises_a_clear_error(bridge, driver):
    with pytest.raises(SyncCallError, match="no answer from http://bridge.test/produce/produceAPI/v2/tenantSync"):
        driver.tenant_sync(HUASHAN, "x")
