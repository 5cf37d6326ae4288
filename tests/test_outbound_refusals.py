"""The public-address policy at tenantSync, and the refusal pages for a busy or failing centre,
through the Flask app on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
import responses

from common import addresses
from sso.auth_centre import AuthCentreError
from tenants.models import Tenant
from tests import factories as f
from tests.helpers import code_of, ok, rows
from tests.sso_fixtures import refused, start

INTERNAL_FORMS = ["2130706433", "0x7f000001", "017700000001", "127.1", "0", "[::1]", "[::ffff:127.0.0.1]",
                  "[64:ff9b::7f00:1]", "[64:ff9b::a9fe:a9fe]", "[64:ff9b:1::1]", "[2002:a9fe:a9fe::1]",
                  "[2001:0:4136:e378:8000:63bf:3fff:fdd2]", "192.0.0.8", "100.64.0.1", "198.18.0.1", "224.0.0.1",
                  "printer.local", "metadata", "08"]


@pytest.mark.parametrize("host", INTERNAL_FORMS)
def test_internal_address_forms_are_refused_at_tenant_sync(app, kg, host):
    """Finding 7: all of these were stored by the old check."""
    answer = kg.kit("tenantSync", f.tenant_sync(domainName=f"https://{host}/t/acme"))
    assert code_of(answer) == "000002", answer.get_json()
    assert rows(app, Tenant) == []


def test_names_in_the_hosts_file_are_refused_at_tenant_sync(app, kg, tmp_path, monkeypatch):
    hosts = tmp_path / "hosts"
    hosts.write_text("10.0.0.7 idp.corp.example.com\n")
    monkeypatch.setattr(addresses, "HOSTS_FILE", str(hosts))
    assert code_of(kg.kit("tenantSync", f.tenant_sync(domainName="https://idp.corp.example.com"))) == "000002"
    assert rows(app, Tenant) == []


def test_allowed_networks_admit_an_internal_centre(make_app):
    from tests.helpers import BASIC_KEY, KIT_KEY
    from tests.koogallery import KooGallery

    app = make_app(IDP_ALLOWED_NETWORKS=["100.64.0.0/10"])
    kg = KooGallery(app.test_client(), KIT_KEY, BASIC_KEY)
    ok(kg.kit("tenantSync", f.tenant_sync(domainName="https://100.100.1.2/t/acme")))
    assert code_of(kg.kit("tenantSync", f.tenant_sync(domainName="https://10.1.2.3", tenantId="t2",
                                                      tenantCode="t2"))) == "000002"
    assert [t.domain_name for t in rows(app, Tenant)] == ["https://100.100.1.2/t/acme"]


def test_a_bad_allow_list_stops_start_up(make_app):
    from config import ConfigError

    with pytest.raises(ConfigError, match="CIDR"):
        make_app(IDP_ALLOWED_NETWORKS="100.64.0.0/10,intranet")


@pytest.fixture
def no_calls():
    """Strict: nothing may reach the centre."""
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def test_busy_centre_answers_a_clear_page_at_once(synced, app, client, no_calls, monkeypatch):
    monkeypatch.setattr(app.extensions["auth_centre_client"].concurrency, "try_acquire", lambda centre: None)
    _, params = start(client)
    response = client.get("/sso/callback", query_string={"code": "c", "state": params["state"], "lang": "en"})
    refused(response, "idp_busy", 503)
    assert response.headers["Retry-After"] == "5"
    assert b"busy" in response.data and not no_calls.calls


def test_open_circuit_answers_a_clear_page_at_once(synced, app, client, no_calls, monkeypatch):
    def circuit_open(host):
        raise AuthCentreError("circuit_open", f"{host} failing", retry_after=17)

    monkeypatch.setattr(app.extensions["auth_centre_client"].circuit, "admit", circuit_open)
    _, params = start(client)
    response = client.get("/sso/callback", query_string={"code": "c", "state": params["state"]})
    refused(response, "idp_circuit_open", 503)
    assert response.headers["Retry-After"] == "17"
    assert "暂时不可用".encode() in response.data and not no_calls.calls
