"""What the rule modules (tenants/signing, tenants/parsing, tenants/newer, sso/admission) decide,
as KooGallery or a user sees it: tests added for the mutants mutmut found alive (docs/mutation.md)."""

from __future__ import annotations

import json

import pytest

from tenants.errors import SyncError
from tenants.signing import (
    canonical_json,
    check_signature_headers,
    kit_signature,
    verify_basic_signature,
    verify_kit_signature,
)
from tests.spec_examples import KEY, NONCE, TS

# --- tenants/signing.py: what KooGallery reads in resultCode/resultMsg, and the audit's signature form ---


def refusal(fn, *args, **kwargs) -> tuple[str, str]:
    with pytest.raises(SyncError) as err:
        fn(*args, **kwargs)
    return err.value.code, err.value.message


@pytest.mark.parametrize("sig, ts, nonce, answer", [
    ("a" * 64, None, NONCE, ("000002", "timestamp is missing")),
    ("a" * 64, "", NONCE, ("000002", "timestamp is missing")),
    ("a" * 64, TS, None, ("000002", "nonce is missing")),
    (None, TS, NONCE, ("000001", "signature is missing")),
    ("a" * 64, "16805080666l8", NONCE, ("000001", "timestamp is not a millisecond UNIX time")),
    ("a" * 64, TS, "bad nonce", ("000001", "nonce is malformed")),
    ("g" * 64, TS, NONCE, ("000001", "signature is not a hex HMAC-SHA256")),
    ("a" * 64, str(int(TS) - 61_500), NONCE, ("000002", "timestamp is too old (61s from the bridge's clock)")),
    ("a" * 64, str(int(TS) + 125_000), NONCE,
     ("000002", "timestamp is too far in the future (125s from the bridge's clock)")),
])
def test_signature_header_refusals_say_what_is_wrong(sig, ts, nonce, answer):
    assert refusal(check_signature_headers, sig, ts, nonce, now_ms=int(TS), window_ms=60_000) == answer


@pytest.mark.parametrize("offset", [-60_000, 60_000, 0])
def test_a_timestamp_exactly_at_the_window_edge_is_accepted(offset):
    headers = check_signature_headers("A" * 64, str(int(TS) + offset), "n" * 128, now_ms=int(TS), window_ms=60_000)
    assert headers.signature == "a" * 64 and headers.nonce == "n" * 128


def test_the_nonce_is_signed_as_sent():
    raw = b'{"tenantId":"t1"}'
    sig = kit_signature(KEY, "nonce-1", TS, raw)
    headers = check_signature_headers(sig, TS, "nonce-1", now_ms=int(TS), window_ms=60_000)
    assert str(verify_kit_signature([KEY], headers, TS, raw, json.loads(raw))) == "primary/canonical"
    other = check_signature_headers(sig, TS, "nonce-2", now_ms=int(TS), window_ms=60_000)
    assert refusal(verify_kit_signature, [KEY], other, TS, raw, json.loads(raw)) == ("000001", "signature does not match")


def test_when_several_candidates_match_the_first_is_reported():
    # The body is already canonical: both forms match, and so do the primary key and its repeat.
    body = {"flag": 1, "tenantId": "t1"}
    raw = canonical_json(body).encode()
    headers = check_signature_headers(kit_signature(KEY, NONCE, TS, raw), TS, NONCE, now_ms=int(TS), window_ms=60_000)
    assert str(verify_kit_signature([KEY, KEY], headers, TS, raw, body)) == "primary/canonical"


def test_a_second_rotation_key_is_reported_as_fallback_2():
    from tenants.signing import basic_signature

    body = {"activity": "newInstance", "orderId": "O1"}
    raw = json.dumps(body).encode()
    sig = basic_signature("oldest", NONCE, TS, raw)
    headers = check_signature_headers(sig, TS, NONCE, now_ms=int(TS), window_ms=60_000)
    assert str(verify_basic_signature([KEY, "older", "oldest"], headers, TS, raw, body)) == "fallback-2/raw"
    assert refusal(verify_basic_signature, [KEY, "older"], headers, TS, raw, body) == ("000001", "signature does not match")


def test_canonical_form_drops_nulls_sorts_keys_and_keeps_chinese_as_utf8():
    body = {"name": "华为测试企业", "flag": 1, "orgName": None, "a": [1, 2]}
    assert canonical_json(body) == '{"a":[1,2],"flag":1,"name":"华为测试企业"}'
    # KooGallery signs those bytes: a body with a null and Chinese text verifies in its canonical form.
    raw = json.dumps(body, ensure_ascii=True, indent=1).encode()
    sig = kit_signature(KEY, NONCE, TS, canonical_json(body).encode("utf-8"))
    headers = check_signature_headers(sig, TS, NONCE, now_ms=int(TS), window_ms=60_000)
    assert str(verify_kit_signature([KEY], headers, TS, raw, body)) == "primary/canonical"
