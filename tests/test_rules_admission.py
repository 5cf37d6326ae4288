"""Who may sign in and stay signed in (sso/admission.py), reason by reason, as the user's refusal page
and the operator's audit see it. The rows are written as the sync handlers store them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from extensions import db
from sso import admission
from sso.errors import LoginError
from sso.models import UserSession
from tenants import queries
from tenants.models import Instance, InstanceStatus, Tenant, TenantInstance, TenantUser

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
LATER = datetime.now(UTC) + timedelta(days=3650)  # for the calls that read the real clock
EARLIER = datetime(2020, 1, 1, tzinfo=UTC)


def tenant(**kw) -> Tenant:
    return Tenant(**{"tenant_id": "t1", "tenant_code": "acme", "name": "Acme", "domain_name": "https://idp.example.com",
                     "test_flag": False, "last_sync_ts": "1", "deleted_at": None, **kw})


def instance(iid="i1", status=InstanceStatus.ACTIVE, expire=None, seats=None, **kw) -> Instance:
    return Instance(instance_id=iid, order_id="o-" + iid, order_line_id="l-" + iid, status=status, expire_time=expire,
                    seats=seats, test_flag=False, **kw)


def user(name="alice", **kw) -> TenantUser:
    return TenantUser(**{"tenant_id": "t1", "user_name": name, "authorized": True, "enabled": True,
                         "test_flag": False, "last_sync_ts": "1", "deleted_at": None, **kw})


# --- the tenant rule, as a table -------------------------------------------------------------------


@pytest.mark.parametrize("status, expire, admits", [
    (InstanceStatus.ACTIVE, None, True),
    (InstanceStatus.ACTIVE, NOW + timedelta(seconds=1), True),
    (InstanceStatus.ACTIVE, NOW, False),
    (InstanceStatus.ACTIVE, NOW - timedelta(days=1), False),
    (InstanceStatus.ACTIVE, (NOW + timedelta(hours=1)).replace(tzinfo=None), True),  # SQLite gives naive UTC
    (InstanceStatus.FROZEN, None, False),
    (InstanceStatus.RELEASED, NOW + timedelta(days=1), False),
])
def test_an_order_admits_logins_while_active_and_unexpired(status, expire, admits):
    assert admission.instance_admits(instance(status=status, expire=expire), NOW) is admits


LIVE = instance("live")
FROZEN = instance("frozen", status=InstanceStatus.FROZEN)
EXPIRED = instance("expired", expire=NOW - timedelta(minutes=1))


@pytest.mark.parametrize("the_tenant, orders, reason", [
    (None, [], "unknown_tenant"),
    (tenant(deleted_at=NOW), [("live", LIVE)], "tenant_deleted"),
    (tenant(deleted_at=NOW, test_flag=True), [], "tenant_deleted"),
    (tenant(), [], None),  # the seller's test credential: bound by no order
    (tenant(test_flag=True), [("frozen", FROZEN)], None),  # debug data: the debug calls never change its orders
    (tenant(), [("live", LIVE)], None),
    (tenant(), [("frozen", FROZEN), ("live", LIVE)], None),
    (tenant(), [("frozen", FROZEN)], "instance_suspended"),
    (tenant(), [("expired", EXPIRED)], "instance_suspended"),
    (tenant(), [("x", None), ("frozen", FROZEN)], "instance_suspended"),
    (tenant(), [("x", None)], "instance_unknown"),
    (tenant(), [("x", None), ("y", None)], "instance_unknown"),
    (tenant(), [("x", None), ("live", LIVE)], None),
])
def test_tenant_rule(the_tenant, orders, reason):
    assert admission.tenant_refusal(the_tenant, orders, NOW) == reason


@pytest.mark.parametrize("orders, seats", [
    ([], None),
    ([("live", instance(seats=None))], None),
    ([("live", instance(seats=5))], 5),
    ([("a", instance("a", seats=5)), ("b", instance("b", seats=3))], 8),
    ([("a", instance("a", seats=5)), ("b", instance("b", seats=None))], 5),
    ([("a", instance("a", seats=5)), ("f", instance("f", status=InstanceStatus.FROZEN, seats=100))], 5),
    ([("f", instance("f", status=InstanceStatus.FROZEN, seats=100))], None),
    ([("x", None), ("a", instance("a", seats=0))], 0),
])
def test_seats_are_those_of_the_live_orders(orders, seats):
    assert admission.seats_of(orders, NOW) == seats


# --- with a database ---------------------------------------------------------------------------------


def store(*objects):
    db.session.add_all(objects)
    db.session.commit()


def bind(*instances, tenant_id="t1"):
    for i, inst in enumerate(instances):
        store(inst, TenantInstance(tenant_id=tenant_id, instance_id=inst.instance_id,
                                   created_at=EARLIER + timedelta(days=i)))


def reason_of(call, *args, **kwargs) -> str:
    with pytest.raises(LoginError) as err:
        call(*args, **kwargs)
    return err.value.reason


@pytest.mark.parametrize("the_user, jit, reason", [
    (None, False, "not_authorised"),
    (None, True, None),
    (user(deleted_at=NOW), False, "not_authorised"),
    (user(deleted_at=NOW), True, None),
    (user(authorized=False), False, "not_authorised"),
    (user(authorized=False), True, "not_authorised"),
    (user(enabled=False), False, "user_disabled"),
    (user(authorized=False, enabled=False), False, "not_authorised"),
    (user(test_flag=True), False, "not_authorised"),
    (user(), False, None),
])
def test_user_rule(app_ctx, the_user, jit, reason):
    assert admission.user_refusal(tenant(), the_user, jit=jit, seats=None) == reason


def test_a_debug_user_signs_in_to_a_debug_tenant(app_ctx):
    assert admission.user_refusal(tenant(test_flag=True), user(test_flag=True), jit=False, seats=None) is None


def test_users_beyond_the_seats_bought_are_refused_in_the_order_they_were_authorised(app_ctx):
    first, second, third = (user(n, created_at=EARLIER + timedelta(days=i)) for i, n in enumerate("abc"))
    store(tenant(), first, second, third, user("revoked", authorized=False, created_at=EARLIER - timedelta(days=1)),
          user("off", enabled=False, created_at=EARLIER - timedelta(days=1)),
          user("gone", deleted_at=NOW, created_at=EARLIER - timedelta(days=1)),
          user("debug", test_flag=True, created_at=EARLIER - timedelta(days=1)))
    t = db.session.get(Tenant, "t1")
    assert [admission.user_refusal(t, u, jit=False, seats=2) for u in (first, second, third)] == [
        None, None, "seats_exceeded"]
    assert admission.user_refusal(t, third, jit=False, seats=3) is None
    assert admission.user_refusal(t, first, jit=False, seats=0) == "seats_exceeded"


def test_users_authorised_in_the_same_instant_are_counted_by_name(app_ctx):
    same = EARLIER
    store(tenant(), user("bob", created_at=same), user("amy", created_at=same))
    t = db.session.get(Tenant, "t1")
    assert admission.user_refusal(t, db.session.get(TenantUser, ("t1", "amy")), jit=False, seats=1) is None
    assert admission.user_refusal(t, db.session.get(TenantUser, ("t1", "bob")), jit=False, seats=1) == "seats_exceeded"


def test_check_tenant_names_the_reason_and_the_tenant(app_ctx):
    assert reason_of(admission.check_tenant, None) == "unknown_tenant"
    store(tenant())
    bind(instance("frozen", status=InstanceStatus.FROZEN))
    t = db.session.get(Tenant, "t1")
    with pytest.raises(LoginError) as err:
        admission.check_tenant(t)
    assert (err.value.reason, err.value.tenant_id) == ("instance_suspended", "t1")
    bind(instance("live", expire=LATER))
    admission.check_tenant(t)
    # An order that expires before `now` no longer admits: the caller's time is the one used.
    assert reason_of(admission.check_tenant, t, LATER + timedelta(days=1)) == "instance_suspended"


def test_admit_user_admits_an_authorised_user_of_a_live_order(app_ctx):
    store(tenant(), user())
    bind(instance("live", expire=LATER))
    admitted = admission.admit_user(db.session.get(Tenant, "t1"), "alice", "t1")
    assert admitted.jit is False and admitted.user.user_name == "alice"


def test_admit_user_answers_with_the_tenant_as_it_is_now(app_ctx):
    store(tenant(), user())
    bind(instance("live", expire=LATER))
    read_before_the_centre = queries.tenant_for_login("t1", None).tenant
    db.session.get(Tenant, "t1").name = "Renamed meanwhile"
    db.session.commit()
    admitted = admission.admit_user(read_before_the_centre, "alice", "t1")
    assert (admitted.tenant.tenant_id, admitted.tenant.name) == ("t1", "Renamed meanwhile")


@pytest.mark.parametrize("centre_tenant, reason", [("other", "tenant_mismatch"), (None, "tenant_missing")])
def test_admit_user_refuses_another_enterprises_user_before_anything_else(app_ctx, centre_tenant, reason):
    store(tenant(), user())
    with pytest.raises(LoginError) as err:
        admission.admit_user(db.session.get(Tenant, "t1"), "alice", centre_tenant)
    assert (err.value.reason, err.value.tenant_id, err.value.user_name) == (reason, "t1", "alice")


def test_the_centres_tenant_must_be_the_callbacks_or_the_chosen_alternative(app_ctx):
    t = tenant(tenant_code="ACME-CODE")
    admission.check_centre_tenant(t, "t1", "alice")
    with pytest.raises(LoginError) as err:
        admission.check_centre_tenant(t, "ACME-CODE", "alice")
    assert err.value.reason == "tenant_mismatch"
    assert err.value.detail == "userinfo tenant 'ACME-CODE', callback tenant 't1'"
    app_ctx.config["USERINFO_TENANT_MATCH"] = "tenant_code"
    admission.check_centre_tenant(t, "ACME-CODE", "alice")
    admission.check_centre_tenant(t, "t1", "alice")
    assert reason_of(admission.check_centre_tenant, t, "acme-code", "alice") == "tenant_mismatch"
    assert reason_of(admission.check_centre_tenant, tenant(tenant_code=""), "", "alice") == "tenant_mismatch"


def test_the_centres_tenant_may_be_the_domain_id_recorded_for_the_tenant(app_ctx):
    app_ctx.config["USERINFO_TENANT_MATCH"] = "domain_id"
    t = tenant(tenant_code="ACME-CODE", domain_id="0a1b2c")
    admission.check_centre_tenant(t, "0a1b2c", "alice")
    admission.check_centre_tenant(t, "t1", "alice")
    with pytest.raises(LoginError) as err:
        admission.check_centre_tenant(t, "ACME-CODE", "alice")
    assert err.value.detail == "userinfo tenant 'ACME-CODE', callback tenant 't1', recorded domainId '0a1b2c'"
    with pytest.raises(LoginError) as err:
        admission.check_centre_tenant(tenant(), "0a1b2c", "alice")
    assert err.value.detail == ("userinfo tenant '0a1b2c', callback tenant 't1', no domainId recorded "
                                "(flask tenants set-domain-id)")
    app_ctx.config["USERINFO_TENANT_MATCH"] = "tenant_id"
    assert reason_of(admission.check_centre_tenant, t, "0a1b2c", "alice") == "tenant_mismatch"


def test_a_userinfo_without_tenant_is_admitted_only_when_the_operator_allows_it(app_ctx):
    with pytest.raises(LoginError) as err:
        admission.check_centre_tenant(tenant(), None, "alice")
    assert (err.value.reason, err.value.detail, err.value.user_name) == ("tenant_missing", "userinfo has no tenant",
                                                                         "alice")
    app_ctx.config["USERINFO_TENANT_OPTIONAL"] = True
    admission.check_centre_tenant(tenant(), None, "alice")


def test_admit_user_applies_the_tenant_rule(app_ctx):
    store(tenant(), user())
    bind(instance("frozen", status=InstanceStatus.FROZEN))
    with pytest.raises(LoginError) as err:
        admission.admit_user(db.session.get(Tenant, "t1"), "alice", "t1")
    assert (err.value.reason, err.value.tenant_id, err.value.user_name) == ("instance_suspended", "t1", "alice")


def test_admit_user_applies_the_user_rule(app_ctx):
    store(tenant(), user(enabled=False))
    with pytest.raises(LoginError) as err:
        admission.admit_user(db.session.get(Tenant, "t1"), "alice", "t1")
    assert (err.value.reason, err.value.detail, err.value.tenant_id, err.value.user_name) == (
        "user_disabled", "user 'alice'", "t1", "alice")


def test_admit_user_keeps_debug_users_out_of_production_tenants(app_ctx):
    store(tenant(), user(test_flag=True))
    assert reason_of(admission.admit_user, db.session.get(Tenant, "t1"), "alice", "t1") == "not_authorised"
    db.session.get(Tenant, "t1").test_flag = True
    db.session.commit()
    assert admission.admit_user(db.session.get(Tenant, "t1"), "alice", "t1").user.user_name == "alice"


def test_just_in_time_users_only_when_enabled_and_the_tenant_has_no_authsync_users(app_ctx):
    store(tenant())
    t = db.session.get(Tenant, "t1")
    assert reason_of(admission.admit_user, t, "newcomer", "t1") == "not_authorised"
    app_ctx.config["JIT_USERS"] = True
    assert admission.admit_user(t, "newcomer", "t1") == admission.Admitted(None, True)
    store(user("someone"))
    assert reason_of(admission.admit_user, t, "newcomer", "t1") == "not_authorised"


def test_a_deleted_user_comes_back_just_in_time_only_on_a_tenant_without_users(app_ctx):
    app_ctx.config["JIT_USERS"] = True
    store(tenant(), user(deleted_at=NOW))
    assert reason_of(admission.admit_user, db.session.get(Tenant, "t1"), "alice", "t1") == "not_authorised"


def test_seats_are_enforced_only_when_the_vendor_sells_by_seat(app_ctx):
    store(tenant(), user("a", created_at=EARLIER), user("b", created_at=EARLIER + timedelta(days=1)))
    bind(instance("live", expire=LATER, seats=1))
    t = db.session.get(Tenant, "t1")
    assert admission.admit_user(t, "b", "t1").user.user_name == "b"
    app_ctx.config["SEATS_FROM_LINEAR_VALUE"] = True
    assert admission.admit_user(t, "a", "t1").user.user_name == "a"
    assert reason_of(admission.admit_user, t, "b", "t1") == "seats_exceeded"
    assert reason_of(admission.recheck, "t1", "b", jit=False) == "seats_exceeded"


def test_a_held_sign_in_is_rechecked_against_what_koogallery_said_since(app_ctx):
    assert reason_of(admission.recheck, "t1", "alice", jit=False) == "unknown_tenant"
    store(tenant(), user())
    admission.recheck("t1", "alice", jit=False)
    assert reason_of(admission.recheck, "t1", "bob", jit=False) == "not_authorised"
    admission.recheck("t1", "bob", jit=True)
    bind(instance("frozen", status=InstanceStatus.FROZEN))
    with pytest.raises(LoginError) as err:
        admission.recheck("t1", "alice", jit=False)
    assert (err.value.reason, err.value.tenant_id, err.value.user_name) == ("instance_suspended", "t1", "alice")


def test_a_held_sign_in_of_debug_data_is_rechecked_against_the_tenants_kind(app_ctx):
    store(tenant(), user(test_flag=True))
    assert reason_of(admission.recheck, "t1", "alice", jit=False) == "not_authorised"
    db.session.get(Tenant, "t1").test_flag = True
    db.session.commit()
    admission.recheck("t1", "alice", jit=False)


def session(**kw) -> UserSession:
    return UserSession(**{"id_hash": "h" * 64, "tenant_id": "t1", "user_name": "alice", "jit": False,
                          "created_at": NOW - timedelta(hours=1), "last_seen_at": NOW - timedelta(minutes=5),
                          "expires_at": NOW + timedelta(hours=7), **kw})


def test_a_session_stays_usable_while_nothing_changed(app_ctx):
    store(tenant(), user())
    assert admission.session_refusal(session(), NOW) is None


@pytest.mark.parametrize("changes, reason", [
    ({"ended_at": NOW, "end_reason": "signed_out"}, "signed_out"),
    ({"ended_at": NOW}, "ended"),
    ({"expires_at": NOW}, "expired"),
    ({"expires_at": NOW - timedelta(seconds=1)}, "expired"),
])
def test_an_ended_or_expired_session_is_refused(app_ctx, changes, reason):
    store(tenant(), user())
    assert admission.session_refusal(session(**changes), NOW) == reason


def test_an_idle_session_is_refused_at_the_idle_limit(app_ctx):
    store(tenant(), user())
    idle = timedelta(minutes=app_ctx.config["SESSION_IDLE_MINUTES"])
    assert admission.session_refusal(session(last_seen_at=NOW - idle + timedelta(seconds=1)), NOW) is None
    assert admission.session_refusal(session(last_seen_at=NOW - idle), NOW) == "idle"
    app_ctx.config["SESSION_IDLE_MINUTES"] = 1
    assert admission.session_refusal(session(last_seen_at=NOW - timedelta(minutes=2)), NOW) == "idle"


def test_a_session_ends_when_the_tenant_or_its_order_stops_admitting(app_ctx):
    assert admission.session_refusal(session(), NOW) == "unknown_tenant"
    store(tenant(), user())
    bind(instance("frozen", status=InstanceStatus.FROZEN))
    assert admission.session_refusal(session(), NOW) == "instance_suspended"


def test_a_session_is_judged_on_the_facts_its_caller_has_read(app_ctx):
    store(tenant(), user())
    frozen = [("frozen", instance("frozen", status=InstanceStatus.FROZEN))]
    def facts(*args, **kw):
        return queries.TenantFacts(*args, **kw, user_read=True)

    assert admission.session_refusal(session(), NOW, facts=facts(tenant(), frozen, user=user())) == (
        "instance_suspended")
    assert admission.session_refusal(session(), NOW, facts=facts(None, [])) == "unknown_tenant"
    assert admission.session_refusal(session(), NOW, facts=facts(tenant(), [], user=user())) is None
    # The user the caller read is the one judged: no such user, nobody admitted.
    assert admission.session_refusal(session(), NOW, facts=facts(tenant(), [])) == "user_revoked"
    assert admission.session_refusal(session(), NOW, facts=facts(tenant(), [], user=user(enabled=False))) == (
        "user_revoked")
    # Facts read without the user (a login's, before the centre's calls) are read again, with it.
    no_user_read = queries.TenantFacts(tenant(), frozen)
    assert admission.session_refusal(session(), NOW, facts=no_user_read) is None  # alice, stored, live order


def test_a_session_ends_when_its_order_expires(app_ctx):
    store(tenant(), user())
    bind(instance("live", expire=NOW + timedelta(days=1)))
    long = session(expires_at=NOW + timedelta(days=9))
    assert admission.session_refusal(long, NOW) is None
    later = NOW + timedelta(days=2)
    assert admission.session_refusal(session(expires_at=NOW + timedelta(days=9), last_seen_at=later), later) == (
        "instance_suspended")


def test_a_debug_users_session_ends_on_a_production_tenant(app_ctx):
    store(tenant(), user(test_flag=True))
    assert admission.session_refusal(session(), NOW) == "user_revoked"
    db.session.get(Tenant, "t1").test_flag = True
    db.session.commit()
    assert admission.session_refusal(session(), NOW) is None


@pytest.mark.parametrize("changes", [{"authorized": False}, {"enabled": False}, {"deleted_at": NOW}])
def test_a_session_ends_when_the_user_is_revoked(app_ctx, changes):
    store(tenant(), user(**changes))
    assert admission.session_refusal(session(), NOW) == "user_revoked"


def test_a_just_in_time_session_survives_without_an_authsync_row(app_ctx):
    store(tenant())
    assert admission.session_refusal(session(jit=True), NOW) is None
    assert admission.session_refusal(session(jit=False), NOW) == "user_revoked"


def test_a_session_beyond_the_seats_ends_when_seats_are_enforced(app_ctx):
    store(tenant(), user("a", created_at=EARLIER), user("alice", created_at=EARLIER + timedelta(days=1)))
    bind(instance("live", seats=1, expire=NOW + timedelta(days=1)))
    assert admission.session_refusal(session(), NOW) is None
    app_ctx.config["SEATS_FROM_LINEAR_VALUE"] = True
    assert admission.session_refusal(session(), NOW) == "user_revoked"


def test_session_refusal_reads_the_clock_when_no_time_is_given(app_ctx):
    store(tenant(), user())
    assert admission.session_refusal(session(expires_at=EARLIER, last_seen_at=EARLIER)) == "expired"
    fresh = datetime.now(UTC)
    assert admission.session_refusal(session(expires_at=LATER, last_seen_at=fresh)) is None


def test_the_order_in_use_is_the_newest_that_admits_logins_else_the_newest(app_ctx):
    assert admission.live_instance_of("t1", NOW) is None
    store(tenant())
    bind(instance("old-live"), instance("frozen", status=InstanceStatus.FROZEN))
    assert admission.live_instance_of("t1", NOW) == "old-live"
    bind(instance("new-live"))
    assert admission.live_instance_of("t1", NOW) == "new-live"


def test_with_no_order_admitting_the_newest_is_the_one_in_use(app_ctx):
    store(tenant())
    bind(instance("a", status=InstanceStatus.FROZEN), instance("b", expire=NOW - timedelta(days=1)))
    assert admission.live_instance_of("t1", NOW) == "b"
    assert admission.live_instance_of("t1") == "b"
    store(TenantInstance(tenant_id="t1", instance_id="unknown", created_at=EARLIER + timedelta(days=30)))
    assert admission.live_instance_of("t1", NOW) == "unknown"


def test_live_instance_reads_the_clock_when_no_time_is_given(app_ctx):
    store(tenant())
    bind(instance("a", expire=LATER), instance("b", expire=NOW))
    assert admission.live_instance_of("t1") == "a"
