"""The example SaaS app: an error answer on its callback is a clear page, never a 500; it fits a phone."""

from __future__ import annotations

import pytest

from examples.saas_app import create_app


@pytest.fixture
def saas():
    return create_app({"TESTING": True, "CLIENT_ID": "demo", "CLIENT_SECRET": "s", "SECRET_KEY": "x" * 32}).test_client()


@pytest.mark.parametrize("error, words", [("access_denied", "未获准登录"), ("login_required", "请先登录"),
                                          ("something_else", "登录未完成")])
def test_callback_with_an_error_is_a_clear_page(saas, error, words):
    response = saas.get(f"/callback?error={error}&error_description=nope&state=abc")
    page = response.get_data(as_text=True)
    assert response.status_code in (400, 403) and words in page and f'data-error="{error}"' in page
    assert 'href="/login"' in page  # a way on: sign in again


def test_callback_without_a_started_sign_in_is_a_clear_page(saas):
    response = saas.get("/callback?code=abc&state=never-issued")
    assert response.status_code == 400 and "登录未完成" in response.get_data(as_text=True)


def test_pages_declare_a_phone_viewport(saas):
    page = saas.get("/").get_data(as_text=True)
    assert 'name="viewport" content="width=device-width, initial-scale=1"' in page and "@media (max-width" in page
