"""The console's words live in the bridge's catalogs (translations/, ids under 'admin.'), in the
language sso.i18n picks. Here: the ids the console looks up under computed names, and helpers for
stored codes shown to operators."""

from __future__ import annotations

from flask_babel import gettext

from sso.i18n import N_

# admin/error.html shows 'admin.error.<key>.title'/'.text' for an AdminError's key.
ERROR_TEXTS = (
    N_("admin.error.unknown_tenant.title"), N_("admin.error.unknown_tenant.text"),
    N_("admin.error.unknown_sync_call.title"), N_("admin.error.unknown_sync_call.text"),
    N_("admin.error.unknown_app.title"), N_("admin.error.unknown_app.text"),
    N_("admin.error.bad_cursor.title"), N_("admin.error.bad_cursor.text"),
    N_("admin.error.stale_cursor.title"), N_("admin.error.stale_cursor.text"),
    N_("admin.error.bad_filter.title"), N_("admin.error.bad_filter.text"),
    N_("admin.error.csrf.title"), N_("admin.error.csrf.text"),
    N_("admin.error.unavailable.title"), N_("admin.error.unavailable.text"),
)

# Stored codes shown through label(): outcomes of sign-ins, operators' actions, instance states, roles.
LABELS = (
    N_("admin.outcome.success"), N_("admin.outcome.refused"), N_("admin.outcome.logout"),
    N_("admin.outcome.ended"), N_("admin.action.sign_in"), N_("admin.action.sign_in_refused"),
    N_("admin.action.sign_out"), N_("admin.action.end_tenant_sessions"), N_("admin.action.end_user_sessions"),
    N_("admin.action.operator_created"), N_("admin.action.password_reset"), N_("admin.action.operator_disabled"),
    N_("admin.action.operator_enabled"),
    N_("admin.instance.ACTIVE"), N_("admin.instance.FROZEN"), N_("admin.instance.RELEASED"),
    N_("admin.user_role.admin"), N_("admin.user_role.user"),
)

# The sync pages explain a result code (tenants/errors.py) as 'admin.result.<code>'.
RESULT_TEXTS = (
    N_("admin.result.000000"), N_("admin.result.000001"), N_("admin.result.000002"), N_("admin.result.000003"),
    N_("admin.result.000004"), N_("admin.result.000005"), N_("admin.result.000101"),
)

# admin/login.html and code.html show 'admin.<error>' for a refused sign-in.
SIGN_IN_ERRORS = (N_("admin.bad_credentials"), N_("admin.bad_code"), N_("admin.locked"), N_("admin.code_expired"))


def label(prefix: str, value: str | None) -> str:
    """A translated name for a stored code (an action, an outcome), or the code itself."""
    key = f"{prefix}.{value}"
    text = gettext(key)
    return text if text != key else (value or "")

