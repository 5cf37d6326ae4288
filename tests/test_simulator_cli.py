"""`flask --app simulator sim ...` through `test_cli_runner()`, with the bridge faked at the
transport by `responses`: which calls each command sends, and what the simulator remembers."""

from __future__ import annotations

import json
import os
import re
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from keys.rsa import public_key_for_koogallery
from simulator import create_app
from simulator.seed import load_seed

SEED = load_seed()
HUASHAN, XIHU = SEED.tenant("huashan"), SEED.tenant("xihu")
BRIDGE = "http://bridge.test"


@pytest.fixture(autouse=True)
def _no_sim_environment(monkeypatch):
    for name in [n for n in os.environ if n.startswith("SIM_")]:
        monkeypatch.delenv(name)


class FakeBridge:
    """Answers like the bridge: 000000, and newInstance's instanceId is the order line's first businessId."""

    def __init__(self, mock: responses.RequestsMock, *, basic: bool = True, kit: bool = True):
        self.calls: list[tuple[str, dict]] = []
        self.nonces: list[str] = []
        self.instances: dict[tuple[str, str], str] = {}
        self.refuse: str | None = None
        if basic:
            mock.add_callback(responses.POST, re.compile(rf"{BRIDGE}/produce(\?.*)?$"), callback=self._answer)
        if kit:
            mock.add_callback(responses.POST, re.compile(rf"{BRIDGE}/produce/produceAPI/v2/\w+"),
                              callback=self._answer)

    def _answer(self, request):
        body = json.loads(request.body)
        path = urlsplit(request.url).path
        name = path.rsplit("/", 1)[-1] if "produceAPI" in path else body["activity"]
        self.calls.append((name, body))
        self.nonces.append(request.headers.get("x-nonce") or parse_qs(urlsplit(request.url).query)["nonce"][0])
        if self.refuse:
            return 200, {"Content-Type": "application/json"}, json.dumps({"resultCode": self.refuse,
                                                                          "resultMsg": "refused by the test"})
        answer = {"resultCode": "000000", "resultMsg": "success"}
        if name == "newInstance":
            key = (body["orderId"], body["orderLineId"])
            answer["instanceId"] = self.instances.setdefault(key, body["businessId"])
        return 200, {"Content-Type": "application/json"}, json.dumps(answer)

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def bodies(self, name: str) -> list[dict]:
        return [body for n, body in self.calls if n == name]


@pytest.fixture
def transport():
    """No network, strictly: a call to an address nobody registered fails, and so does a
    registered endpoint that the test never called."""
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def bridge(transport):
    """The bridge's basic (/produce) and kit (/produce/produceAPI/v2/...) endpoints."""
    return FakeBridge(transport)


@pytest.fixture
def basic_bridge(transport):
    return FakeBridge(transport, kit=False)


@pytest.fixture
def kit_bridge(transport):
    return FakeBridge(transport, basic=False)


@pytest.fixture
def sim(tmp_path, rsa_key):
    return create_app({"TESTING": True, "STATE_DB": str(tmp_path / "sim.sqlite"), "PUBLIC_URL": "http://sim.test",
                       "BRIDGE_URL": BRIDGE, "APP_LOGIN_URL": f"{BRIDGE}/sso/callback",
                       "KIT_ACCESS_KEY": "kit-key-cli", "BASIC_ACCESS_KEY": "basic-key-cli",
                       "BRIDGE_PUBLIC_KEY": public_key_for_koogallery(rsa_key[0])})


@pytest.fixture
def sim_cmd(sim):
    runner = sim.test_cli_runner()

    def invoke(*args):
        return runner.invoke(args=["sim", *args])

    return invoke


@pytest.fixture
def synced(sim_cmd, bridge):
    result = sim_cmd("sync")
    assert result.exit_code == 0, result.output
    bridge.calls.clear()
    bridge.nonces.clear()
    return result


def user_state(sim, tenant, user_name):
    s = sim.extensions["simulator"]
    return s.directory.users(s.directory.tenant(tenant), include_deleted=True)[
        [u.user_name for u in s.directory.tenant(tenant).users].index(user_name)]


def test_sync_binds_every_tenant_then_places_and_links_each_order(sim_cmd, bridge):
    result = sim_cmd("sync")
    assert result.exit_code == 0, result.output
    per_tenant = ["tenantSync", "applicationSync", "allOrgSync", "authSync"]
    assert bridge.names() == per_tenant * 2 + ["newInstance", "tenantSync"] * 2
    first, linked = bridge.bodies("tenantSync")[0], bridge.bodies("tenantSync")[2]
    assert first["domainName"] == "http://sim.test/t/huashan" and first["instanceId"] == first["orderId"] == ""
    assert linked["instanceId"] == HUASHAN.order.business_id and linked["orderId"] == HUASHAN.order.order_id
    granted = {u["userName"]: u["enable"] for u in bridge.bodies("authSync")[0]["userList"]}
    assert granted == {"zhangsan": "true", "lisi": "true", "wangwu": "false"}  # zhaoliu is not authorised
    assert "instance 6c134fd9-e9bb-4914-8fe1-86876c572eab" in result.output


def test_sync_again_sends_a_new_business_id_and_keeps_the_instance(sim_cmd, bridge, synced):
    assert sim_cmd("sync").exit_code == 0
    again = bridge.bodies("newInstance")[0]
    assert again["businessId"] != HUASHAN.order.business_id
    assert bridge.bodies("tenantSync")[-2]["instanceId"] == HUASHAN.order.business_id
    listing = sim_cmd("instances").output
    assert HUASHAN.order.business_id in listing and XIHU.order.business_id in listing


def test_revoke_needs_the_tenant_when_the_user_name_is_in_several(sim_cmd, bridge, synced):
    result = sim_cmd("revoke", "lisi")
    assert result.exit_code == 1 and "--tenant" in result.output and bridge.calls == []


def test_revoke_cancels_the_authorisation_and_the_simulator_remembers(sim, sim_cmd, bridge, synced):
    result = sim_cmd("revoke", "lisi", "--tenant", "huashan")
    assert result.exit_code == 0, result.output
    (name, body), = bridge.calls
    assert name == "authSync" and body["flag"] == 3 and body["userList"][0]["userName"] == "lisi"
    assert body["tenantId"] == HUASHAN.tenant_id and body["instanceId"] == HUASHAN.order.business_id
    assert user_state(sim, "huashan", "lisi").authorised is False
    assert user_state(sim, "xihu", "lisi").authorised is True


def test_grant_authorises_a_user(sim, sim_cmd, bridge, synced):
    assert sim_cmd("grant", "zhaoliu").exit_code == 0
    (name, body), = bridge.calls
    assert (name, body["flag"], body["userList"][0]["userName"]) == ("authSync", 1, "zhaoliu")
    assert user_state(sim, "huashan", "zhaoliu").authorised is True


def test_disable_and_enable_send_flag_2_with_the_enable_string(sim, sim_cmd, bridge, synced):
    assert sim_cmd("disable", "zhangsan").exit_code == 0
    assert sim_cmd("enable", "zhangsan").exit_code == 0
    assert [(b["flag"], b["userList"][0]["enable"]) for b in bridge.bodies("authSync")] == [(2, "false"),
                                                                                          (2, "true")]
    assert user_state(sim, "huashan", "zhangsan").enabled is True


def test_disabling_a_user_the_app_never_had_sends_nothing(sim, sim_cmd, bridge, synced):
    result = sim_cmd("disable", "zhouqi")
    assert result.exit_code == 0 and "nothing is sent" in result.output and bridge.calls == []
    assert user_state(sim, "xihu", "zhouqi").enabled is False


def test_delete_user_sends_flag_0_and_the_user_can_no_longer_sign_in(sim, sim_cmd, bridge, synced):
    assert sim_cmd("delete-user", "chenjing").exit_code == 0
    assert bridge.bodies("authSync")[0]["flag"] == 0
    s = sim.extensions["simulator"]
    assert s.directory.authenticate(XIHU, "chenjing", "Chenjing@123") is None


def test_freeze_unfreeze_release_and_renew_reach_the_instance(sim_cmd, bridge, synced):
    assert sim_cmd("freeze", "huashan").exit_code == 0
    assert sim_cmd("unfreeze", HUASHAN.order.business_id).exit_code == 0
    assert sim_cmd("renew", "xihu", "--expire", "20301231235959").exit_code == 0
    assert sim_cmd("release", "xihu").exit_code == 0
    bodies = [b for _, b in bridge.calls]
    assert [(b["activity"], b["instanceId"]) for b in bodies] == [
        ("updateInstanceStatus", HUASHAN.order.business_id), ("updateInstanceStatus", HUASHAN.order.business_id),
        ("refreshInstance", XIHU.order.business_id), ("releaseInstance", XIHU.order.business_id)]
    assert [bodies[0]["status"], bodies[1]["status"]] == ["FREEZE", "UNFREEZE"]
    assert bodies[2]["expireTime"] == "20301231235959" and bodies[2]["scene"] == "RENEWAL"
    listing = sim_cmd("instances").output
    assert re.search(r"xihu\s+\S+\s+\S+\s+RELEASED\s+20301231235959", listing), listing


def test_renew_with_a_bad_expiry_is_refused_before_sending(sim_cmd, bridge, synced):
    result = sim_cmd("renew", "huashan", "--expire", "2030-12-31")
    assert result.exit_code == 1 and "yyyyMMddHHmmss" in result.output and bridge.calls == []


def test_an_instance_id_the_simulator_never_saw_is_sent_as_given(sim_cmd, basic_bridge):
    assert sim_cmd("freeze", "inst-from-elsewhere").exit_code == 0
    (name, body), = basic_bridge.calls
    assert (name, body["instanceId"]) == ("updateInstanceStatus", "inst-from-elsewhere")


def test_delete_tenant_unbinds_and_sync_binds_again(sim, sim_cmd, bridge, synced):
    assert sim_cmd("delete-tenant", "xihu").exit_code == 0
    (name, body), = bridge.calls
    assert (name, body["flag"], body["tenantId"], body["instanceId"]) == ("tenantSync", 0, XIHU.tenant_id,
                                                                          XIHU.order.business_id)
    assert not sim.extensions["simulator"].directory.is_bound(XIHU)
    assert sim_cmd("delete-tenant", "nowhere").exit_code == 1
    sim_cmd("sync")
    assert sim.extensions["simulator"].directory.is_bound(XIHU)


def test_a_refusing_bridge_gives_a_clear_error_and_exit_status_1(sim_cmd, bridge, synced):
    bridge.refuse = "000001"
    result = sim_cmd("revoke", "zhangsan")
    assert result.exit_code == 1
    assert "resultCode '000001'" in result.output and "run the command again" in result.output


def test_an_unreachable_bridge_gives_a_clear_error(sim, transport):
    runner = sim.test_cli_runner()
    result = runner.invoke(args=["sim", "freeze", "huashan", "--bridge", "http://down.test"])
    assert result.exit_code == 1 and "no answer from http://down.test/produce" in result.output


def test_missing_access_keys_are_named(tmp_path, transport):
    bare = create_app({"TESTING": True, "STATE_DB": str(tmp_path / "s.sqlite")})
    result = bare.test_cli_runner().invoke(args=["sim", "sync"])
    assert result.exit_code == 1 and "SIM_KIT_ACCESS_KEY and SIM_BASIC_ACCESS_KEY" in result.output


def test_a_missing_public_key_is_named_before_applicationsync_is_sent(tmp_path, kit_bridge):
    app = create_app({"TESTING": True, "STATE_DB": str(tmp_path / "s.sqlite"), "KIT_ACCESS_KEY": "k",
                      "BASIC_ACCESS_KEY": "b", "BRIDGE_URL": BRIDGE})
    result = app.test_cli_runner().invoke(args=["sim", "sync"])
    assert result.exit_code == 1 and "SIM_BRIDGE_PUBLIC_KEY" in result.output
    assert kit_bridge.names() == ["tenantSync"]


def test_a_malformed_public_key_is_named(tmp_path, transport):
    app = create_app({"TESTING": True, "STATE_DB": str(tmp_path / "s.sqlite"), "KIT_ACCESS_KEY": "k",
                      "BASIC_ACCESS_KEY": "b", "BRIDGE_PUBLIC_KEY": "not a key"})
    result = app.test_cli_runner().invoke(args=["sim", "sync"])
    assert result.exit_code == 1 and "public key" in result.output


def test_fault_on_list_and_off(sim, sim_cmd):
    assert sim_cmd("faults").output.strip() == "no faults"
    on = sim_cmd("fault", "huashan", "slow", "--seconds", "3")
    assert on.exit_code == 0 and "huashan: slow on, 3 s" in on.output
    assert sim_cmd("fault", "xihu", "wrong_tenant").exit_code == 0
    listing = sim_cmd("faults").output
    assert re.search(r"huashan\s+slow\s+3 s", listing) and re.search(r"xihu\s+wrong_tenant", listing)
    assert sim.extensions["simulator"].store.faults() == {"huashan": {"slow": 3.0}, "xihu": {"wrong_tenant": 0.0}}
    assert sim_cmd("fault", "huashan", "slow", "--off").exit_code == 0
    assert sim.extensions["simulator"].store.faults() == {"xihu": {"wrong_tenant": 0.0}}
    assert sim_cmd("fault", "nowhere", "slow").exit_code == 1
    assert sim_cmd("fault", "huashan", "explode").exit_code == 2
    assert sim_cmd("fault", "huashan", "slow", "--seconds", "0").exit_code == 1


def test_a_fault_set_by_the_cli_reaches_the_server_through_the_state_file(sim, sim_cmd, tmp_path):
    """Another process (the running server) opens the same SQLite file."""
    sim_cmd("fault", "huashan", "error5xx")
    server = create_app({"TESTING": True, "STATE_DB": str(tmp_path / "sim.sqlite")})
    answer = server.test_client().post("/t/huashan/api/v1/oauth2/token", data={"grant_type": "authorization_code"})
    assert answer.status_code == 502


def test_users_lists_every_demo_user_with_password_and_purpose(sim_cmd):
    output = sim_cmd("users").output
    assert re.search(r"huashan\s+wangwu\s+王五\s+Wangwu@123\s+user\s+yes\s+no\s+Disabled", output)
    assert re.search(r"xihu\s+zhouqi\s+周七\s+Zhouqi@123\s+user\s+no\s+yes\s+Not authorised", output)
    assert len(output.strip().splitlines()) == 1 + 8


def test_reset_returns_to_the_seed(sim, sim_cmd, bridge, synced):
    sim_cmd("revoke", "zhangsan")
    sim_cmd("fault", "huashan", "slow")
    assert sim_cmd("reset").exit_code == 0
    assert user_state(sim, "huashan", "zhangsan").authorised is True
    assert sim.extensions["simulator"].store.faults() == {}
    assert "no instances yet" in sim_cmd("instances").output


@pytest.mark.parametrize(("scene", "expire", "product_id"), [
    ("TRIAL_TO_FORMAL", "20301231235959", "P-FORMAL-YEAR"), ("RENEWAL", "20301231235959123", None),
    ("UNSUBSCRIBE_RENEWAL_PERIOD", "20290101000000", None), ("RENEWAL_CHANGE", "20311231235959000", None)])
def test_refresh_sends_each_scene_with_a_new_order(sim_cmd, bridge, synced, scene, expire, product_id):
    args = ["refresh", "huashan", "--scene", scene, "--expire", expire]
    result = sim_cmd(*args, *(["--product-id", product_id] if product_id else []))
    assert result.exit_code == 0, result.output
    (name, body), = bridge.calls
    assert (name, body["scene"], body["expireTime"], body["instanceId"]) == (
        "refreshInstance", scene, expire, HUASHAN.order.business_id)
    assert body["orderId"] != HUASHAN.order.order_id and body["orderLineId"].startswith(body["orderId"])
    assert body.get("productId") == product_id
    assert re.search(rf"huashan\s+\S+\s+\S+\s+ACTIVE\s+{expire[:14]}", sim_cmd("instances").output)


@pytest.mark.parametrize(("args", "message"), [(("--scene", "RENEW", "--expire", "20301231235959"), "RENEW"),
                                               (("--scene", "RENEWAL", "--expire", "203012312359591"), "yyyyMMddHHmmss")])
def test_refresh_with_a_bad_scene_or_expiry_is_refused_before_sending(sim_cmd, bridge, synced, args, message):
    result = sim_cmd("refresh", "huashan", *args)
    assert result.exit_code != 0 and message in result.output and bridge.calls == []


def test_upgrade_sends_the_v2_body_without_product_fields(sim_cmd, bridge, synced):
    assert sim_cmd("upgrade", "xihu").exit_code == 0
    (name, body), = bridge.calls
    assert name == "upgradeInstance" and set(body) == {"activity", "instanceId", "orderId", "orderLineId"}
    assert body["instanceId"] == XIHU.order.business_id and body["orderId"] != XIHU.order.order_id


def test_change_check_sends_product_info_and_a_refusal_exits_1(sim_cmd, bridge, synced):
    result = sim_cmd("change-check", "huashan", "--sku", "SKU-5", "--product-id", "P-1", "--quantity", "5")
    assert result.exit_code == 0 and "000000" in result.output
    (name, body), = bridge.calls
    assert name == "changeInstanceCheck" and body["instanceId"] == HUASHAN.order.business_id
    assert body["productInfo"] == {"productId": "P-1", "skuCode": "SKU-5", "productName": "续费变更规格",
                                   "linearValue": 5}
    bridge.refuse = "000002"
    result = sim_cmd("change-check", "huashan", "--sku", "SKU-1", "--product-id", "P-1")
    assert result.exit_code == 1 and "the bridge refused the change: 000002" in result.output
    assert "linearValue" not in bridge.bodies("changeInstanceCheck")[1]["productInfo"]


def test_bind_places_the_order_first_and_every_binding_sync_carries_its_instance(sim, sim_cmd, bridge):
    result = sim_cmd("bind", "huashan")
    assert result.exit_code == 0, result.output
    assert bridge.names() == ["newInstance", "tenantSync", "applicationSync", "allOrgSync", "authSync"]
    assert {b["instanceId"] for _, b in bridge.calls[1:]} == {HUASHAN.order.business_id}
    assert bridge.bodies("tenantSync")[0]["orderId"] == HUASHAN.order.order_id
    assert sim.extensions["simulator"].directory.is_bound(HUASHAN)


def test_the_binds_with_instance_fault_makes_sync_bind_that_tenant_the_buyers_way(sim_cmd, bridge):
    assert sim_cmd("fault", "xihu", "binds_with_instance").exit_code == 0
    assert sim_cmd("sync").exit_code == 0
    xihu = [(n, b["instanceId"]) for n, b in bridge.calls if b.get("tenantId") == XIHU.tenant_id]
    assert xihu == [(n, XIHU.order.business_id) for n in ("tenantSync", "applicationSync", "allOrgSync", "authSync")]
    huashan = [(n, b["instanceId"]) for n, b in bridge.calls if b.get("tenantId") == HUASHAN.tenant_id]
    assert huashan[:3] == [("tenantSync", ""), ("applicationSync", ""), ("allOrgSync", "")]
    order_placed = next(i for i, (n, b) in enumerate(bridge.calls)
                        if n == "newInstance" and b["orderId"] == XIHU.order.order_id)
    assert order_placed < next(i for i, (n, b) in enumerate(bridge.calls) if b.get("tenantId") == XIHU.tenant_id)


def test_the_drops_answers_fault_sends_each_call_twice_with_one_nonce(sim_cmd, bridge, synced):
    assert sim_cmd("fault", "huashan", "drops_answers").exit_code == 0
    assert sim_cmd("revoke", "lisi", "--tenant", "huashan").exit_code == 0
    assert sim_cmd("freeze", "xihu").exit_code == 0  # another tenant's calls go once
    assert bridge.names() == ["authSync", "authSync", "updateInstanceStatus"]
    assert bridge.calls[0][1] == bridge.calls[1][1] and bridge.nonces[0] == bridge.nonces[1]
