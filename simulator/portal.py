"""KooGallery's browser side: the landing page, the unified login portal (spec §6.1 A) and the
enterprise workbench (§6.1 B). Both end the same way: a code from the user's tenant centre, sent
to the app's registered login address as ?code=…&tenant=<tenantId> (no state)."""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, g, redirect, request, url_for

from simulator.directory import Member
from simulator.services import services
from simulator.state import WORKBENCH, idp_scope
from simulator.web import _, browser_id, check_csrf, error_page, render_page, sign_in_ttl, with_query

log = logging.getLogger(__name__)

bp = Blueprint("portal", __name__)


def _demo_rows():
    directory = services().directory
    return [(t, u) for t in directory.tenants for u in directory.users(t)]


def _all_user_names() -> list[str]:
    return sorted({u.user_name for _t, u in _demo_rows()})


def _signed_in_member() -> Member | None:
    """The KooGallery account this browser is signed in with (None if the user was deleted since)."""
    s = services()
    signed = s.store.signed_in(browser_id(), WORKBENCH)
    tenant = s.directory.tenant(signed[0]) if signed else None
    user = s.directory.user(tenant, signed[1]) if tenant else None
    return Member(tenant, user) if user else None


def _sign_in_from_form() -> tuple[Member | None, str | None]:
    """(member, None) after a good sign-in, which also signs the browser in at the tenant's centre
    (the workbench's accounts are that centre's accounts); else (None, error message)."""
    check_csrf()
    s = services()
    tenant = s.directory.tenant(request.form.get("tenant", ""))
    if tenant is None:
        return None, _("signin.unknown_tenant")
    user = s.directory.authenticate(tenant, request.form.get("username", ""), request.form.get("password", ""))
    if user is None:
        return None, _("signin.failed")
    sid = browser_id(create=True)
    for scope in (WORKBENCH, idp_scope(tenant.tenant_code)):
        s.store.sign_in(sid, scope, tenant.tenant_code, user.user_name, sign_in_ttl())
    return Member(tenant, user), None


def _launch(member: Member, via: str):
    """Send the browser to the app with a fresh code from the member's tenant centre."""
    login_url = current_app.config["APP_LOGIN_URL"]
    code = services().oauth.issue_code(member.tenant, member.user, client_id=member.tenant.client_id,
                                       redirect_uri=login_url)
    log.info("code_issued tenant=%s user=%s via=%s", member.tenant.tenant_code, member.user.user_name, via)
    return redirect(with_query(login_url, code=code, tenant=member.tenant.tenant_id))


@bp.get("/")
def landing():
    s = services()
    faults = s.store.faults()
    centres = [{"tenant": t, "domain_name": s.directory.domain_name(t), "bound": s.directory.is_bound(t),
                "faults": faults.get(t.tenant_code, {})} for t in s.directory.tenants]
    return render_page("landing.html", centres=centres, demo_rows=_demo_rows())


@bp.get("/unified-login/")
def unified_login():
    """The real portal address keeps its parameters after '#'; see the template's script."""
    return render_page("unified_login.html")


@bp.route("/unified-login/portal-login", methods=["GET", "POST"])
def portal_login():
    s = services()
    ind, app_id = request.args.get("ind", ""), request.args.get("appId", "")
    if ind != "UNOP":
        return error_page(_("error.portal_refused"), _("error.portal_ind", value=ind[:64]), 400)
    if app_id != s.directory.app_id:
        return error_page(_("error.portal_refused"), _("error.portal_app", value=app_id[:64]), 400)
    current, error = _signed_in_member(), None
    if request.method == "POST":
        if request.form.get("action") == "continue" and current is not None:
            check_csrf()
            return _launch(current, "portal")
        member, error = _sign_in_from_form()
        if member is not None:
            return _launch(member, "portal")
    return render_page("portal.html", current=current, error=error, tenants=s.directory.tenants,
                       selected_tenant=request.form.get("tenant") or (current.tenant.tenant_code if current else ""),
                       username=request.form.get("username", ""), user_names=_all_user_names(),
                       form_action=request.full_path.rstrip("?"), demo_rows=_demo_rows(),
                       app_name=s.seed.app_name(g.lang))


def _workbench_page(member: Member | None, error: str | None = None):
    s = services()
    apps, reason = [], None
    if member is not None:
        bound = s.directory.is_bound(member.tenant)
        if member.user.has_app and bound:
            apps = [{"app_id": s.directory.app_id, "name": s.seed.app_name(g.lang)}]
        elif not member.user.authorised:
            reason = _("workbench.reason.not_authorised")
        elif not member.user.enabled:
            reason = _("workbench.reason.disabled")
        else:
            reason = _("workbench.reason.unbound")
    department = member.tenant.department(member.user.org_code) if member else None
    return render_page("workbench.html", member=member, department=department, apps=apps, no_apps_reason=reason,
                       error=error, tenants=s.directory.tenants, selected_tenant=request.form.get("tenant", ""),
                       username=request.form.get("username", ""), user_names=_all_user_names(),
                       demo_rows=_demo_rows())


@bp.get("/workbench")
def workbench():
    return _workbench_page(_signed_in_member())


@bp.post("/workbench/sign-in")
def workbench_sign_in():
    member, error = _sign_in_from_form()
    if member is None:
        return _workbench_page(None, error)
    return redirect(url_for(".workbench"))


@bp.post("/workbench/sign-out")
def workbench_sign_out():
    check_csrf()
    s, sid = services(), browser_id()
    signed = s.store.signed_in(sid, WORKBENCH)
    scopes = [WORKBENCH] + ([idp_scope(signed[0])] if signed else [])
    s.store.sign_out(sid, *scopes)
    return redirect(url_for(".workbench"))


@bp.get("/workbench/launch/<app_id>")
def workbench_launch(app_id):
    member = _signed_in_member()
    if member is None:
        return redirect(url_for(".workbench"))
    s = services()
    if app_id != s.directory.app_id or not member.user.has_app or not s.directory.is_bound(member.tenant):
        return error_page(_("error.unknown_app"), _("error.unknown_app_detail"), 404)
    return _launch(member, "workbench")
