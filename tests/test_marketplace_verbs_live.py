"""The simulator's marketplace verbs and faults against a live bridge (gunicorn, PostgreSQL):
renewal changes, every refreshInstance scene, the V2 upgrade body, the buyer's binding with the
instanceId, and a marketplace that loses answers and re-sends. Asserts what the bridge stored."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from extensions import db
from simulator.seed import load_seed
from tenants.models import Instance, SyncCall, TenantApp, TenantUser
from tests.e2e import Browser, launch_from_workbench, stack_fixture

pytestmark = pytest.mark.live

SEED = load_seed()
HUASHAN, XIHU = SEED.tenant("huashan"), SEED.tenant("xihu")

stack = stack_fixture("marketplace-verbs", SEATS_FROM_LINEAR_VALUE="true")


def instance(fresh, tenant=HUASHAN) -> Instance:
    with fresh.bridge_app.app_context():
        found = db.session.get(Instance, tenant.order.business_id)
        db.session.expunge(found)
        return found


def sync_log(fresh, interface: str) -> list[tuple[str, str]]:
    with fresh.bridge_app.app_context():
        return [tuple(r) for r in db.session.execute(db.select(SyncCall.result_code, SyncCall.result_msg)
                                                     .filter_by(interface=interface).order_by(SyncCall.id))]


def sim_refused(fresh, *args) -> str:
    result = fresh.sim_app.test_cli_runner().invoke(args=["sim", *args])
    assert result.exit_code == 1, result.output
    return result.output


def authorised_users(fresh, tenant) -> int:
    with fresh.bridge_app.app_context():
        return db.session.scalar(db.select(db.func.count()).select_from(TenantUser).filter_by(
            tenant_id=tenant.tenant_id, authorized=True, enabled=True, deleted_at=None))


def test_a_change_check_allows_or_refuses_and_renewal_change_takes_the_allowed_quantity(fresh):
    in_use = authorised_users(fresh, HUASHAN)
    assert in_use >= 2
    refusal = sim_refused(fresh, "change-check", "huashan", "--sku", "SKU-S", "--product-id", "P-1",
                          "--quantity", str(in_use - 1))
    assert "000002" in refusal and f"below the {in_use} users already authorised" in refusal
    assert "000000" in fresh.sim("change-check", "huashan", "--sku", "SKU-L", "--product-id", "P-1",
                                 "--quantity", str(in_use + 5))
    assert instance(fresh).seats_requested == in_use + 5
    fresh.sim("refresh", "huashan", "--scene", "RENEWAL_CHANGE", "--expire", "20321231235959")
    stored = instance(fresh)
    assert (stored.seats, stored.seats_requested) == (in_use + 5, None)
    assert [code for code, _ in sync_log(fresh, "basic:changeInstanceCheck")] == ["000002", "000000"]


@pytest.mark.parametrize(("scene", "expire", "product_id", "expected"), [
    ("TRIAL_TO_FORMAL", "20301231235959", "P-FORMAL-YEAR", datetime(2030, 12, 31, 23, 59, 59, tzinfo=UTC)),
    ("RENEWAL", "20310630120000123", None, datetime(2031, 6, 30, 12, 0, 0, tzinfo=UTC)),  # to the second
    ("UNSUBSCRIBE_RENEWAL_PERIOD", "20290101000000", None, datetime(2029, 1, 1, tzinfo=UTC)),
])
def test_every_refresh_scene_moves_the_expiry_and_keeps_the_product(fresh, scene, expire, product_id, expected):
    before = instance(fresh)
    fresh.sim("refresh", "huashan", "--scene", scene, "--expire", expire,
              *(["--product-id", product_id] if product_id else []))
    after = instance(fresh)
    assert after.expire_time.astimezone(UTC) == expected
    assert after.product_id == (product_id or before.product_id)
    assert after.last_order_id not in (None, before.last_order_id, HUASHAN.order.order_id)
    assert sync_log(fresh, "basic:refreshInstance")[-1][0] == "000000"


def test_the_v2_upgrade_body_is_applied_without_product_fields(fresh):
    before = instance(fresh, XIHU)
    output = fresh.sim("upgrade", "xihu")
    after = instance(fresh, XIHU)
    assert after.last_order_id and after.last_order_id in output and after.last_order_id != before.last_order_id
    assert (after.product_id, after.sku_code, after.status) == (before.product_id, before.sku_code, "ACTIVE")


@pytest.mark.parametrize("how", ["verb", "fault"])
def test_a_buyer_binding_whose_syncs_carry_the_instance_is_stored_and_signs_in(fresh, how):
    fresh.sim("delete-tenant", "xihu")
    if how == "verb":
        fresh.sim("bind", "xihu")
    else:
        fresh.fault("xihu", "binds_with_instance")
        fresh.sim("sync")
    with fresh.bridge_app.app_context():
        apps = db.session.execute(db.select(TenantApp.instance_id, TenantApp.client_secret_enc)
                                  .filter_by(tenant_id=XIHU.tenant_id)).all()
        logged = db.session.execute(db.select(SyncCall.interface, SyncCall.instance_id, SyncCall.result_msg)
                                    .filter_by(tenant_id=XIHU.tenant_id).order_by(SyncCall.id.desc()).limit(4)).all()
    assert [(iid, bool(secret)) for iid, secret in apps] == [(XIHU.order.business_id, True)]
    assert {(interface, iid) for interface, iid, _ in logged} == {
        (f"kit:{n}", XIHU.order.business_id) for n in ("tenantSync", "applicationSync", "allOrgSync", "authSync")}
    assert not any("matches no instance" in msg for *_, msg in logged)  # the order came first
    browser = Browser()
    launch_from_workbench(fresh, browser, tenant="xihu", user="chenjing")
    assert browser.me(fresh).json()["user_name"] == "chenjing"


def test_a_marketplace_that_loses_answers_gets_the_first_answer_again_and_nothing_twice(fresh):
    fresh.fault("huashan", "drops_answers")
    fresh.sim("revoke", "lisi", "--tenant", "huashan")
    fresh.sim("freeze", "huashan")
    with fresh.bridge_app.app_context():
        lisi = db.session.get(TenantUser, (HUASHAN.tenant_id, "lisi"))
        assert lisi.authorized is False
    assert instance(fresh).status == "FROZEN"
    for interface in ("kit:authSync", "basic:updateInstanceStatus"):
        first, resent = sync_log(fresh, interface)[-2:]
        assert first[0] == resent[0] == "000000"
        assert resent[1] == f"re-send: first answer repeated ({first[1]})"
    fresh.sim("unfreeze", "huashan")  # still re-sent: applied once, answered twice
    assert instance(fresh).status == "ACTIVE"
