"""The simulator playing the marketplace against a live bridge (gunicorn, PostgreSQL): the seller's
saved debug cases replayed twenty rounds in random order, and a re-send after a lost answer."""

from __future__ import annotations

import pytest

from tests.e2e import Browser, stack_fixture

pytestmark = pytest.mark.live

stack = stack_fixture("certification")


def test_twenty_random_rounds_of_the_saved_cases_pass_and_production_is_untouched(fresh):
    before = {code: fresh.bridge_cli("tenants", "show", code) for code in ("huashan", "xihu")}
    output = fresh.sim("probe", "--rounds", "20", "--seed", "7")
    assert "240 calls, 0 failed" in output
    after = {code: fresh.bridge_cli("tenants", "show", code) for code in ("huashan", "xihu")}
    assert after == before
    listing = fresh.bridge_cli("tenants", "list")
    assert "debugseller" in listing and "debug" in listing.splitlines()[-1] + listing
    # The production tenants still sign in from the workbench.
    browser = Browser()
    browser.workbench_sign_in(fresh, "huashan", "zhangsan")
    assert browser.get(f"{fresh.bridge.url}/sso/login?tenant=huashan").status_code == 200
    assert browser.me(fresh).json()["user_name"] == "zhangsan"


def test_a_resend_after_a_lost_answer_gets_the_first_answer(fresh):
    output = fresh.sim("resend")
    first, resent = (line.split(":", 1)[1].strip() for line in output.splitlines()[:2])
    assert first == resent and "000000" in first
