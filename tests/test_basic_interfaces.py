"""The general-SaaS lifecycle (spec §7): newInstance … releaseInstance."""

from __future__ import annotations

import pytest

from common.clock import utcnow
from extensions import db
from sso.admission import instance_admits
from tenants.models import Instance
from tests import factories as f
from tests.helpers import code_of, ok, rows


def _admits(instance) -> bool:
    return instance_admits(instance, utcnow())


def test_new_instance_uses_first_business_id_and_is_idempotent_per_order_line(app, kg):
    first = ok(kg.basic(f.new_instance()))
    again = ok(kg.basic(f.new_instance(businessId="another-business-id")))
    assert first["instanceId"] == again["instanceId"] == "87b94795-0603-4e24-8ae5-69420d60e3c8"
    [instance] = rows(app, Instance)
    assert instance.test_flag is True and instance.status == "ACTIVE"


def test_new_instance_for_another_order_line_is_another_instance(app, kg):
    ok(kg.basic(f.new_instance()))
    other = ok(kg.basic(f.new_instance(orderLineId="CS2211181819B4LVS-000002", businessId="b2", testFlag=None)))
    assert other["instanceId"] == "b2"
    assert len(rows(app, Instance)) == 2


def test_new_instance_missing_order_line_is_refused(app, kg):
    body = f.new_instance()
    del body["orderLineId"]
    assert code_of(kg.basic(body)) == "000002"
    assert rows(app, Instance) == []


def test_query_instance_points_at_the_bridge_login(kg):
    ok(kg.basic(f.new_instance()))
    answer = ok(kg.basic({"activity": "queryInstance", "instanceId": "87b94795-0603-4e24-8ae5-69420d60e3c8,unknown"}))
    [info] = answer["info"]
    assert info["instanceId"] == "87b94795-0603-4e24-8ae5-69420d60e3c8"
    assert info["appInfo"]["frontEndUrl"] == "http://localhost/sso/login?instance=87b94795-0603-4e24-8ae5-69420d60e3c8"


def test_query_instance_uses_public_url_when_configured(make_app):
    from tests.helpers import BASIC_KEY, KIT_KEY
    from tests.koogallery import KooGallery

    kg = KooGallery(make_app(PUBLIC_URL="https://bridge.example.com/").test_client(), KIT_KEY, BASIC_KEY)
    ok(kg.basic(f.new_instance(businessId="i1")))
    info = ok(kg.basic({"activity": "queryInstance", "instanceId": "i1"}))["info"][0]
    assert info["appInfo"]["frontEndUrl"] == "https://bridge.example.com/sso/login?instance=i1"


@pytest.mark.parametrize("activity, extra", [
    ("queryInstance", {}),
    ("refreshInstance", {"expireTime": "20300101000000", "scene": "RENEWAL", "orderId": "o2", "orderLineId": "l2"}),
    ("updateInstanceStatus", {"status": "FREEZE"}),
    ("releaseInstance", {}),
    ("upgradeInstance", {"orderId": "o3"}),
])
def test_unknown_instance_is_000003(kg, activity, extra):
    assert code_of(kg.basic({"activity": activity, "instanceId": "nope", **extra})) == "000003"


def test_refresh_updates_expiry(app, kg):
    ok(kg.basic(f.new_instance(businessId="i1")))
    ok(kg.basic({"activity": "refreshInstance", "instanceId": "i1", "scene": "RENEWAL", "orderId": "CS-R",
                 "orderLineId": "CS-R-1", "expireTime": "20301231235959"}))
    [instance] = rows(app, Instance)
    assert instance.expire_time.strftime("%Y%m%d%H%M%S") == "20301231235959"
    assert instance.last_order_id == "CS-R"


def test_refresh_with_bad_expire_time_changes_nothing(app, kg):
    ok(kg.basic(f.new_instance(businessId="i1")))
    assert code_of(kg.basic({"activity": "refreshInstance", "instanceId": "i1", "expireTime": "2030-12-31"})) == "000002"
    assert rows(app, Instance)[0].expire_time is None


def test_expired_instance_does_not_admit_logins(app, kg):
    ok(kg.basic(f.new_instance(businessId="i1")))
    ok(kg.basic({"activity": "refreshInstance", "instanceId": "i1", "expireTime": "20200101000000"}))
    assert _admits(rows(app, Instance)[0]) is False


def test_freeze_unfreeze_release_change_what_login_admits(app, kg):
    ok(kg.basic(f.new_instance(businessId="i1")))
    ok(kg.basic({"activity": "updateInstanceStatus", "instanceId": "i1", "status": "FREEZE"}))
    assert _admits(rows(app, Instance)[0]) is False
    ok(kg.basic({"activity": "updateInstanceStatus", "instanceId": "i1", "status": "UNFREEZE"}))
    assert _admits(rows(app, Instance)[0]) is True
    for _ in range(2):  # a repeated release succeeds
        ok(kg.basic({"activity": "releaseInstance", "instanceId": "i1"}))
    instance = rows(app, Instance)[0]
    assert instance.status == "RELEASED" and not _admits(instance)
    # Released is final: it cannot be unfrozen back to life.
    assert code_of(kg.basic({"activity": "updateInstanceStatus", "instanceId": "i1", "status": "UNFREEZE"})) == "000003"


def test_bad_status_value_is_refused(kg):
    ok(kg.basic(f.new_instance(businessId="i1")))
    assert code_of(kg.basic({"activity": "updateInstanceStatus", "instanceId": "i1", "status": "PAUSE"})) == "000002"


def test_upgrade_records_the_new_order(app, kg):
    ok(kg.basic(f.new_instance(businessId="i1")))
    ok(kg.basic({"activity": "upgradeInstance", "instanceId": "i1", "orderId": "CS-U", "skuCode": "pro"}))
    instance = rows(app, Instance)[0]
    assert (instance.last_order_id, instance.sku_code) == ("CS-U", "pro")


@pytest.mark.parametrize("activity", ["unknownActivity", None, 7, ""])
def test_unknown_activity_is_000002(app, kg, activity):
    response = kg.basic({"activity": activity, "instanceId": "x"})
    assert code_of(response) == "000002"
    assert "activity" in response.get_json()["resultMsg"]


def test_basic_signature_in_body_headers_instead_of_query_is_refused(client):
    from tests.helpers import BASIC_KEY
    from tests.koogallery import kit_headers

    response = client.post("/produce", json=f.new_instance(), headers=kit_headers(BASIC_KEY, f.new_instance()))
    assert response.get_json()["resultCode"] == "000002"  # no timestamp/nonce in the query


def test_kit_key_does_not_sign_basic_calls(app, client):
    from tests.helpers import KIT_KEY
    from tests.koogallery import KooGallery

    assert code_of(KooGallery(client, KIT_KEY, KIT_KEY).basic(f.new_instance())) == "000001"
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(Instance)) == 0
