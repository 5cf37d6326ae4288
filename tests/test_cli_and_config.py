"""Operators' view: start-up checks, `flask keys`, `flask tenants|users|sync`."""

from __future__ import annotations

import os
import stat

import pytest
from cryptography.fernet import Fernet

from app import create_app
from config import ConfigError
from extensions import db
from keys import keyring
from keys.rsa import decrypt_client_secret, encrypt_client_secret, public_key_from_koogallery
from tenants.models import TenantApp
from tests import factories as f
from tests.helpers import ok

# --- start-up checks (no database needed) ------------------------------------------------------


@pytest.mark.parametrize("override, message", [
    ({"SECRET_KEY": None}, "BRIDGE_SECRET_KEY"),
    ({"SECRET_KEY": "short"}, "BRIDGE_SECRET_KEY"),
    ({"KIT_ACCESS_KEY": ""}, "BRIDGE_KIT_ACCESS_KEY"),
    ({"BASIC_ACCESS_KEY": None}, "BRIDGE_BASIC_ACCESS_KEY"),
    ({"BASIC_ACCESS_KEY": "kit-access-key-0123456789"}, "different key"),
    ({"DATA_KEYS": []}, "BRIDGE_DATA_KEYS"),
    ({"DATA_KEYS": ["not-a-fernet-key"]}, "not a valid Fernet key"),
    ({"SIGNATURE_WINDOW_SECONDS": 0}, "SIGNATURE_WINDOW_SECONDS"),
    ({"SIGNATURE_WINDOW_SECONDS": 600}, "NONCE_TTL_SECONDS"),
    ({"MAINTENANCE_BUSY_PERCENT": 0}, "BRIDGE_MAINTENANCE_BUSY_PERCENT must be a whole number from 1 to 100"),
    ({"MAINTENANCE_BUSY_PERCENT": 101}, "BRIDGE_MAINTENANCE_BUSY_PERCENT"),
    ({"MAINTENANCE_BUSY_PERCENT": "25"}, "BRIDGE_MAINTENANCE_BUSY_PERCENT"),
])
def test_missing_or_malformed_secret_stops_start_up(base_config, override, message):
    with pytest.raises(ConfigError, match=message):
        create_app({**base_config, **override})


def test_malformed_rsa_key_stops_start_up(base_config, tmp_path):
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ConfigError, match="not an unencrypted PEM"):
        create_app({**base_config, "RSA_PRIVATE_KEY_FILE": str(bad)})


def test_short_rsa_key_stops_start_up(base_config, tmp_path):
    from keys.rsa import generate_private_key, write_private_key

    write_private_key(generate_private_key(2048), str(tmp_path / "short.pem"))
    with pytest.raises(ConfigError, match="2048 bits"):
        create_app({**base_config, "RSA_PRIVATE_KEY_FILE": str(tmp_path / "short.pem")})


def test_environment_overrides_and_secret_strings_stay_strings(base_config, monkeypatch, tmp_path):
    monkeypatch.setenv("BRIDGE_KIT_ACCESS_KEY", "123456")  # would be an int through from_prefixed_env
    monkeypatch.setenv("BRIDGE_PRODUCE_PATH", "/isv/produce/")
    monkeypatch.setenv("BRIDGE_SIGNATURE_WINDOW_SECONDS", "30")
    secret_file = tmp_path / "basic"
    secret_file.write_text("basic-from-file\n")
    monkeypatch.setenv("BRIDGE_BASIC_ACCESS_KEY_FILE", str(secret_file))
    config = {k: v for k, v in base_config.items() if k not in ("KIT_ACCESS_KEY", "BASIC_ACCESS_KEY")}
    app = create_app({**config, "DATABASE_URL": "sqlite://"})
    assert app.config["KIT_ACCESS_KEY"] == "123456"
    assert app.config["BASIC_ACCESS_KEY"] == "basic-from-file"
    assert app.config["SIGNATURE_WINDOW_SECONDS"] == 30
    assert "/isv/produce/produceAPI/v2/<interface>" in {r.rule for r in app.url_map.iter_rules()}


def test_start_up_message_names_every_problem(tmp_path):
    with pytest.raises(ConfigError) as err:
        create_app({"INSTANCE_PATH": str(tmp_path)})
    text = str(err.value)
    for name in ("BRIDGE_SECRET_KEY", "BRIDGE_KIT_ACCESS_KEY", "BRIDGE_BASIC_ACCESS_KEY", "BRIDGE_DATA_KEYS"):
        assert name in text


def test_generated_local_config_is_valid(tmp_path):
    from config.generate import render

    (tmp_path / "config.py").write_text(render(local=True))
    app = create_app({"INSTANCE_PATH": str(tmp_path), "DATABASE_URL": "sqlite://"})
    assert len(app.config["SECRET_KEY"]) >= 32 and app.config["LOCAL_DEV"] is True


# --- flask keys --------------------------------------------------------------------------------


def test_keys_generate_writes_a_private_key_and_prints_the_public_key(base_config, tmp_path):
    app = create_app({**base_config, "DATABASE_URL": "sqlite://", "RSA_PRIVATE_KEY_FILE": str(tmp_path / "k.pem")})
    result = app.test_cli_runner().invoke(args=["keys", "generate"])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(os.stat(tmp_path / "k.pem").st_mode) == 0o600
    assert (tmp_path / "k.pem.pub").read_text().startswith("-----BEGIN PUBLIC KEY-----")
    public_line = result.output.strip().splitlines()[-1]
    assert "BEGIN" not in public_line and "\n" not in public_line
    public = public_key_from_koogallery(public_line)
    assert public.key_size == 3072
    # What KooGallery encrypts with the pasted key, the bridge decrypts.
    from keys.rsa import load_private_key

    private = load_private_key(str(tmp_path / "k.pem"))
    assert decrypt_client_secret(encrypt_client_secret("abc", public), private)[0] == "abc"
    # A second generate refuses to clobber the key.
    again = app.test_cli_runner().invoke(args=["keys", "generate"])
    assert again.exit_code != 0 and "already exists" in again.output


def test_keys_show_public_reprints_the_same_key(base_config, rsa_key):
    from keys.rsa import public_key_for_koogallery

    app = create_app({**base_config, "DATABASE_URL": "sqlite://"})
    result = app.test_cli_runner().invoke(args=["keys", "show-public"])
    assert result.output.strip().splitlines()[-1] == public_key_for_koogallery(rsa_key[0])


def test_keys_show_public_without_key_explains(base_config, tmp_path):
    app = create_app({**base_config, "DATABASE_URL": "sqlite://", "RSA_PRIVATE_KEY_FILE": str(tmp_path / "none.pem")})
    result = app.test_cli_runner().invoke(args=["keys", "show-public"])
    assert result.exit_code != 0 and "flask keys generate" in result.output


def test_data_key_rotation_reencrypts_stored_secrets(make_app, rsa_key):
    from tests.helpers import BASIC_KEY, DATA_KEY, KIT_KEY
    from tests.koogallery import KooGallery

    old_app = make_app()
    ok(KooGallery(old_app.test_client(), KIT_KEY, BASIC_KEY).kit(
        "applicationSync", f.application_sync(encrypt_client_secret("the-secret", rsa_key[0].public_key()))))
    new_key = Fernet.generate_key().decode()
    app = make_app(DATA_KEYS=[new_key, DATA_KEY])
    result = app.test_cli_runner().invoke(args=["keys", "rotate-data"])
    assert "re-encrypted 1" in result.output
    only_new = make_app(DATA_KEYS=[new_key])
    with only_new.app_context():
        stored = db.session.execute(db.select(TenantApp)).scalar_one()
        assert keyring().data.decrypt(stored.client_secret_enc) == "the-secret"


# --- flask tenants / users / sync ---------------------------------------------------------------


def test_tenants_list_and_show(app, kg, runner, rsa_key):
    ok(kg.kit("tenantSync", f.tenant_sync()))
    ok(kg.kit("applicationSync", f.application_sync(encrypt_client_secret("the-secret", rsa_key[0].public_key()))))
    ok(kg.kit("authSync", f.auth_sync([f.user("u1"), f.user("u2", enable="false")])))
    ok(kg.kit("allOrgSync", f.all_org_sync([{"orgCode": "D1", "orgName": "Dept"}])))
    ok(kg.basic(f.new_instance(businessId="inst-1")))
    listing = runner.invoke(args=["tenants", "list"]).output
    assert f.TENANT in listing and "huawei" in listing and "https://example.tenantaccount.com" in listing
    shown = runner.invoke(args=["tenants", "show", "huawei"]).output
    assert "inst-1" in shown and "ACTIVE" in shown
    assert "client NzZeWuiJa91dPSRdZQChMazIh13AW" in shown and "secret stored" in shown
    assert "2 (1 authorised and enabled)" in shown and "Departments  1" in shown
    assert "the-secret" not in shown


def test_tenants_show_unknown_is_a_clear_error(runner):
    result = runner.invoke(args=["tenants", "show", "nobody"])
    assert result.exit_code != 0 and "no tenant" in result.output


def test_users_list(app, kg, runner):
    ok(kg.kit("tenantSync", f.tenant_sync()))
    ok(kg.kit("authSync", f.auth_sync([f.user("alice", role="admin"), f.user("bob", enable="false")])))
    output = runner.invoke(args=["users", "list", f.TENANT]).output
    alice = next(line for line in output.splitlines() if line.startswith("alice"))
    bob = next(line for line in output.splitlines() if line.startswith("bob"))
    assert "admin" in alice and alice.rstrip().endswith("yes")
    assert bob.rstrip().endswith("no")


def test_sync_log_filters(app, kg, runner):
    ok(kg.kit("tenantSync", f.tenant_sync()))
    kg.kit("tenantSync", f.tenant_sync(tenantId="t2", domainName="ftp://bad"))
    everything = runner.invoke(args=["sync", "log"]).output
    assert everything.count("kit:tenantSync") == 2
    failed = runner.invoke(args=["sync", "log", "--failed"]).output
    assert "000002" in failed and "000000" not in failed
    mine = runner.invoke(args=["sync", "log", "--tenant", "t2"]).output
    assert "tenant=t2" in mine and f.TENANT not in mine
