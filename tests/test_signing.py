"""The spec's worked examples (§3.5) are the contract for signature verification."""

import json

import pytest

from tenants.errors import ResultCode, SyncError
from tenants.signing import (
    basic_signature,
    body_sign_header,
    canonical_json,
    check_signature_headers,
    hmac_hex,
    kit_signature,
    verify_basic_signature,
    verify_kit_signature,
)
from tests.spec_examples import (
    BASIC_SIGNATURE,
    KEY,
    KIT_SIGNATURE,
    NEW_INSTANCE,
    NEW_INSTANCE_HMAC,
    NONCE,
    TENANT_SYNC_CANONICAL,
    TENANT_SYNC_RAW,
    TS,
)


def headers(signature, ts=TS, nonce=NONCE):
    return check_signature_headers(signature, ts, nonce, now_ms=int(ts), window_ms=60_000)


def test_canonical_payload_matches_spec_example():
    assert canonical_json(json.loads(TENANT_SYNC_RAW)) == TENANT_SYNC_CANONICAL


def test_kit_signature_matches_spec_example():
    payload = canonical_json(json.loads(TENANT_SYNC_RAW)).encode()
    assert kit_signature(KEY, NONCE, TS, payload).upper() == KIT_SIGNATURE


def test_kit_verification_accepts_spec_example_in_any_case():
    for sig in (KIT_SIGNATURE.upper(), KIT_SIGNATURE.lower()):
        verified = verify_kit_signature([KEY], headers(sig), TS, TENANT_SYNC_RAW.encode(), json.loads(TENANT_SYNC_RAW))
        assert str(verified) == "primary/canonical"


def test_basic_signature_matches_spec_example():
    payload = canonical_json(NEW_INSTANCE).encode()
    assert hmac_hex(KEY, payload) == NEW_INSTANCE_HMAC
    assert basic_signature(KEY, NONCE, TS, payload) == BASIC_SIGNATURE
    verified = verify_basic_signature([KEY], headers(BASIC_SIGNATURE), TS, json.dumps(NEW_INSTANCE).encode(),
                                      NEW_INSTANCE)
    assert verified.form == "canonical"


def test_body_sign_header_matches_spec_v1_example():
    assert body_sign_header("demoV1Key", b'{"resultCode":"000000","resultMsg":"success."}') == (
        'sign_type="HMAC-SHA256", signature="2pxWK4sgC+TXWRMwPDTHG8X/SJWbwfgAzZX7r9c/aZY="')


def test_raw_body_form_is_accepted_when_canonical_differs():
    raw = b'{ "tenantId": "t1",  "flag": 1 }'
    sig = kit_signature(KEY, NONCE, TS, raw)
    assert str(verify_kit_signature([KEY], headers(sig), TS, raw, json.loads(raw))) == "primary/raw"


def test_rotation_fallback_key_is_accepted_and_reported():
    raw = TENANT_SYNC_RAW.encode()
    sig = kit_signature("old-key", NONCE, TS, canonical_json(json.loads(raw)).encode())
    assert str(verify_kit_signature([KEY, "old-key"], headers(sig), TS, raw, json.loads(raw))) == "fallback-1/canonical"


def test_wrong_key_is_refused_with_000001():
    raw = TENANT_SYNC_RAW.encode()
    sig = kit_signature("someone-else", NONCE, TS, raw)
    with pytest.raises(SyncError) as err:
        verify_kit_signature([KEY], headers(sig), TS, raw, json.loads(raw))
    assert err.value.code == ResultCode.AUTH_FAILED


@pytest.mark.parametrize("sig, ts, nonce, code", [
    ("a" * 64, None, NONCE, "000002"),            # timestamp missing
    ("a" * 64, TS, None, "000002"),               # nonce missing
    (None, TS, NONCE, "000001"),                  # signature missing
    ("zz" * 32, TS, NONCE, "000001"),             # not hex
    ("a" * 63, TS, NONCE, "000001"),              # wrong length
    ("a" * 64, "16805080666l8", NONCE, "000001"),  # malformed timestamp
    ("a" * 64, "9" * 40, NONCE, "000001"),        # absurd timestamp
    ("a" * 64, TS, "bad nonce\n", "000001"),      # malformed nonce
    ("a" * 64, TS, "n" * 129, "000001"),          # overlong nonce
    ("a" * 64, str(int(TS) - 61_000), NONCE, "000002"),  # stale
    ("a" * 64, str(int(TS) + 61_000), NONCE, "000002"),  # future
])
def test_malformed_or_stale_headers_get_a_clean_code(sig, ts, nonce, code):
    with pytest.raises(SyncError) as err:
        check_signature_headers(sig, ts, nonce, now_ms=int(TS), window_ms=60_000)
    assert err.value.code == code


def test_timestamp_inside_window_is_accepted():
    assert check_signature_headers("A" * 64, str(int(TS) - 59_000), NONCE, now_ms=int(TS), window_ms=60_000)
