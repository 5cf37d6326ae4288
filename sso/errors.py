"""Why a login did not complete: a stable reason code, the HTTP status of the page, and whether
trying again can help. The words shown to people are in translations/ under <code>.title and <code>.text."""

from __future__ import annotations

# reason -> (HTTP status, retry makes sense)
REASONS = {
    "unknown_tenant": (404, False),
    "tenant_deleted": (403, False),
    "instance_suspended": (403, False),
    "instance_unknown": (403, False),
    "seats_exceeded": (403, False),
    "tenant_missing": (403, False),
    "app_missing": (503, False),
    "not_authorised": (403, False),
    "user_disabled": (403, False),
    "tenant_mismatch": (403, True),
    "state_invalid": (400, True),
    "state_expired": (400, True),
    "state_replayed": (400, True),
    "state_mismatch": (400, True),
    "code_missing": (400, True),
    "code_invalid": (400, True),
    "idp_denied": (403, True),
    "idp_unreachable": (502, True),
    "idp_timeout": (504, True),
    "idp_error": (502, True),
    "idp_garbage": (502, True),
    "idp_rejected_client": (502, False),
    "idp_no_state": (502, False),
    "idp_forbidden_host": (502, False),
    "idp_busy": (503, True),
    "idp_circuit_open": (503, True),
    "bad_request": (400, True),
    "too_many_logins": (429, True),
    "confirm_expired": (400, True),
}


class LoginError(Exception):
    def __init__(self, reason: str, detail: str = "", *, tenant_id: str | None = None, user_name: str | None = None,
                 retry_after: int | None = None):
        if reason not in REASONS:
            raise ValueError(f"unknown login refusal reason {reason!r}")
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.tenant_id = tenant_id
        self.user_name = user_name
        self.retry_after = retry_after  # seconds, sent as Retry-After

    @property
    def status(self) -> int:
        return REASONS[self.reason][0]

    @property
    def retryable(self) -> bool:
        return REASONS[self.reason][1]
