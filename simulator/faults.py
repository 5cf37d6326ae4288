"""Faults a tenant's authentication centre, or the marketplace acting for that tenant, can be told
to show, so the bridge's handling can be seen and tested: set with `flask sim fault` or POST
/_sim/faults/<tenantCode>."""

from __future__ import annotations

from flask import Response

from simulator.directory import Directory
from simulator.state import FAULT_KINDS, Store

DESCRIPTIONS = {
    "slow": "token and userinfo answer after N seconds (--seconds, default 10)",
    "error5xx": "token answers 502, userinfo 503, with an HTML body (a gateway in trouble)",
    "malformed_json": "token and userinfo answer 200 application/json that is not valid JSON",
    "expired_codes": "the token endpoint answers invalid_grant for every authorization code",
    "wrong_tenant": "userinfo reports another tenant's id in `tenant`",
    # How a real centre may treat a re-initiated authorize (it documents no `prompt`).
    "honours_prompt": "authorize with prompt=none answers error=login_required when the browser is not signed in",
    "refuses_prompt": "authorize with any prompt parameter answers error=invalid_request",
    "forgets_sign_in": "authorize shows the sign-in page even to a browser signed in at the centre",
    "domain_id_tenant": "userinfo reports the enterprise's domainId (not the tenantId) in `tenant`",
    # How the marketplace itself behaves towards the bridge for this tenant's calls.
    "drops_answers": "every sync call is sent, its answer lost, and re-sent identically (same nonce and body)",
    "binds_with_instance": "`sim sync` binds the buyer's way: newInstance first, then tenantSync, applicationSync, "
                           "allOrgSync and authSync all carry the instanceId",
}
DEFAULT_SLOW_SECONDS = 10.0
MAX_SLOW_SECONDS = 300.0


class FaultError(ValueError):
    """A fault request that cannot be applied; the message says why."""


def set_fault(store: Store, directory: Directory, tenant_code: str, kind: str, on: bool,
              seconds: float | None = None) -> float:
    """Turn a fault on or off; returns the delay in force (slow only, else 0)."""
    if directory.tenant(tenant_code) is None:
        raise FaultError(f"no tenant with code {tenant_code!r}")
    if kind not in FAULT_KINDS:
        raise FaultError(f"unknown fault {kind!r}; one of: {', '.join(FAULT_KINDS)}")
    delay = 0.0
    if kind == "slow" and on:
        delay = DEFAULT_SLOW_SECONDS if seconds is None else seconds
        if isinstance(delay, bool) or not isinstance(delay, (int, float)) or not 0 < delay <= MAX_SLOW_SECONDS:
            raise FaultError(f"seconds must be a number above 0 and at most {MAX_SLOW_SECONDS:g}")
    store.set_fault(tenant_code, kind, on, float(delay))
    return delay


_GATEWAY_PAGE = ("<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n<center><h1>{status} {reason}"
                 "</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")


def injected_failure(faults: dict[str, float], endpoint: str, sleep) -> Response | None:
    """Apply the tenant's faults to a token or userinfo call: wait, or answer instead of it."""
    if "slow" in faults:
        sleep(faults["slow"])
    if "error5xx" in faults:
        status, reason = (502, "Bad Gateway") if endpoint == "token" else (503, "Service Temporarily Unavailable")
        return Response(_GATEWAY_PAGE.format(status=status, reason=reason), status, mimetype="text/html")
    if "malformed_json" in faults:
        return Response('{"access_token":"', 200, mimetype="application/json")
    return None
