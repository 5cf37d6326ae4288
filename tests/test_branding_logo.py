"""The BRIDGE_BRAND_LOGO file, served by the bridge at /sso/brand/logo: what a browser gets."""

from __future__ import annotations

import os
import shutil
from email.utils import parsedate_to_datetime

import pytest

from app import create_app
from config import ConfigError

# A real 1x1 PNG and a small SVG: the bytes a browser must get back unchanged.
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
                    "0000000d49444154789c6360f8cfc0f01f0005fe02fedc44d4a60000000049454e44ae426082")
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="32" height="32"><circle cx="16" cy="16" r="16"/></svg>'


@pytest.fixture
def bridge(base_config, sqlite_template, tmp_path):
    """An app with its own instance folder (where the logo file lives) and BRAND_* settings."""
    instance = tmp_path / "instance"
    instance.mkdir()
    database = tmp_path / "bridge.sqlite"
    shutil.copy(sqlite_template, database)

    def build(**settings):
        return create_app({**base_config, "INSTANCE_PATH": str(instance), "DATABASE_URL": f"sqlite:///{database}",
                           **settings})

    build.instance = instance
    return build


@pytest.mark.parametrize(("name", "body", "content_type"), [
    ("logo.png", PNG, "image/png"),
    ("brand/Logo.SVG", SVG, "image/svg+xml"),
], ids=["png", "svg-in-a-subfolder"])
def test_logo_file_is_served_with_its_image_type_and_an_hour_of_caching(bridge, name, body, content_type):
    (bridge.instance / name).parent.mkdir(exist_ok=True)
    (bridge.instance / name).write_bytes(body)
    client = bridge(BRAND_LOGO=name).test_client()

    response = client.get("/sso/brand/logo")

    assert response.status_code == 200
    assert response.data == body
    assert response.mimetype == content_type
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    cache = response.cache_control
    assert cache.public and cache.max_age == 3600 and not cache.no_store
    assert response.headers["Content-Length"] == str(len(body))
    # Opened on its own (an SVG is a document), nothing in it may run or load.
    assert "sandbox" in response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]


def test_logo_revalidation_answers_not_modified(bridge):
    (bridge.instance / "logo.png").write_bytes(PNG)
    client = bridge(BRAND_LOGO="logo.png").test_client()
    first = client.get("/sso/brand/logo")
    assert first.headers["ETag"] and parsedate_to_datetime(first.headers["Last-Modified"])

    again = client.get("/sso/brand/logo", headers={"If-None-Match": first.headers["ETag"]})

    assert again.status_code == 304 and again.data == b""


def test_pages_show_the_served_logo_in_the_header(bridge):
    (bridge.instance / "logo.png").write_bytes(PNG)
    page = bridge(BRAND_LOGO="logo.png", BRAND_APP_NAME="华山协同办公").test_client().get("/sso/signed-out")

    assert page.status_code == 200
    assert '<img src="/sso/brand/logo"' in page.get_data(as_text=True)


def test_no_logo_configured_serves_nothing_and_pages_show_no_image(bridge):
    (bridge.instance / "logo.png").write_bytes(PNG)  # present, but not named by BRIDGE_BRAND_LOGO
    client = bridge().test_client()

    response = client.get("/sso/brand/logo")

    assert response.status_code == 404
    assert response.mimetype == "text/html" and PNG not in response.data
    assert "<img" not in client.get("/sso/signed-out").get_data(as_text=True)


def test_logo_url_setting_is_used_as_it_is_and_nothing_is_served_here(bridge):
    client = bridge(BRAND_LOGO="https://cdn.example.com/logo.png").test_client()

    assert client.get("/sso/brand/logo").status_code == 404
    page = client.get("/sso/signed-out")
    assert '<img src="https://cdn.example.com/logo.png"' in page.get_data(as_text=True)
    assert "https://cdn.example.com" in page.headers["Content-Security-Policy"]


def test_logo_file_removed_after_start_is_a_clean_not_found(bridge):
    (bridge.instance / "logo.png").write_bytes(PNG)
    client = bridge(BRAND_LOGO="logo.png").test_client()
    (bridge.instance / "logo.png").unlink()

    response = client.get("/sso/brand/logo")

    assert response.status_code == 404
    assert response.mimetype == "text/html"


@pytest.mark.parametrize("setting", [
    "missing.png",  # not there
    "../outside.png",  # outside the instance folder
    "/etc/passwd",  # an absolute path
    "notes.txt",  # not an image type
    "link.png",  # a link inside the folder to a file outside it
    "http://cdn.example.com/logo.png",  # plain http
    "file:///etc/passwd",
])
def test_unsafe_or_missing_logo_file_stops_the_bridge_at_start(bridge, tmp_path, setting):
    (tmp_path / "outside.png").write_bytes(PNG)
    (bridge.instance / "notes.txt").write_text("not a logo")
    os.symlink(tmp_path / "outside.png", bridge.instance / "link.png")

    with pytest.raises(ConfigError, match="BRIDGE_BRAND_LOGO=.*inside the instance folder"):
        bridge(BRAND_LOGO=setting)
