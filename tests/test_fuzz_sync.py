"""Fuzzing the sync endpoints: correctly signed, structurally mutated bodies for every interface.

Whatever arrives, KooGallery gets its JSON: never HTTP 5xx, never 000005 (an internal error
invites a retry that can never succeed), no traceback in the log, and a refused body stores
nothing (DESIGN invariants 2, 3; the "bad input" rule)."""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time

import pytest

from extensions import db
from keys.rsa import encrypt_client_secret
from tests import factories as f
from tests.helpers import BASIC_KEY, KIT_KEY, ok
from tests.koogallery import KooGallery, basic_query, kit_headers

CALLS_PER_DATABASE = 2000
TIME_BUDGET_SECONDS = 240  # the loop stops here on a slow machine; the count run is asserted
SEED = 20261201

INSTANCE = "87b94795-0603-4e24-8ae5-69420d60e3c8"

ODD_TEXT = [
    "\ud800",  # a lone surrogate: only expressible as the JSON escape \ud800
    "a\udfffb",
    "\x00",
    "x\x00y",
    "\u202eevil\u202c",  # right-to-left override
    "\u200f\u200e",
    "\ufeff",
    "😀" * 50,
    "e\u0301" * 30,
    "x" * 70_000,
    "汉" * 300,
    "",
    " ",
    "\n\t",
    "<script>alert(1)</script>",
    "'; DROP TABLE kg_tenant; --",
    "../../etc/passwd",
    "https://127.0.0.1/",
    "%00",
    "1e400",
    "20221301250000000",
]
ODD_VALUES = [None, True, False, 0, -1, 1, 2, 3, 2**63, -(2**63), 10**30, 1.5, -0.0, 1e308, [], {}, [1, "a"],
              {"a": {"b": {"c": []}}}, [[[[[[]]]]]], [{}], [{"userName": "\ud800"}]]
FOREIGN_FIELDS = ["domainName", "clientSecret", "userList", "orgCode", "orgInfoList", "activity", "appId",
                  "businessId", "productInfo", "status", "__proto__", "constructor", "", "\ud800", "a" * 300]


def _valid_bodies(rsa_public) -> list[tuple[str, dict]]:
    secret = encrypt_client_secret("fuzz-secret", rsa_public)
    kit = [
        ("tenantSync", f.tenant_sync(instanceId=INSTANCE, testFlag=0)),
        ("applicationSync", f.application_sync(secret, instanceId=INSTANCE)),
        ("authSync", f.auth_sync([f.user("zhangsan"), f.user("lisi", role="admin")], instanceId=INSTANCE)),
        ("singleOrgSync", f.single_org_sync("D1", instanceId=INSTANCE)),
        ("allOrgSync", f.all_org_sync([{"orgCode": "D1", "orgName": "一部", "parentCode": ""},
                                       {"orgCode": "D2", "orgName": "二部", "parentCode": "D1"}], instanceId=INSTANCE)),
    ]
    basic = [
        ("newInstance", f.new_instance(testFlag="0", productInfo={"linearValue": 10})),
        ("queryInstance", {"activity": "queryInstance", "instanceId": INSTANCE}),
        ("refreshInstance", {"activity": "refreshInstance", "instanceId": INSTANCE, "scene": "RENEWAL",
                             "orderId": "CS-R", "orderLineId": "CS-R-1", "expireTime": "20301231235959"}),
        ("updateInstanceStatus", {"activity": "updateInstanceStatus", "instanceId": INSTANCE, "status": "UNFREEZE"}),
        ("upgradeInstance", {"activity": "upgradeInstance", "instanceId": INSTANCE, "orderId": "CS-U",
                             "productInfo": {"linearValue": 20}}),
        ("changeInstanceCheck", {"activity": "changeInstanceCheck", "instanceId": INSTANCE,
                                 "productInfo": {"productId": "p", "skuCode": "s", "productName": "n",
                                                 "linearValue": 5}}),
        ("releaseInstance", {"activity": "releaseInstance", "instanceId": INSTANCE, "orderId": "CS-X"}),
    ]
    return [("kit", name, body) for name, body in kit] + [("basic", name, body) for name, body in basic]


def _odd(rng: random.Random):
    roll = rng.random()
    if roll < 0.45:
        return rng.choice(ODD_TEXT)
    if roll < 0.85:
        return rng.choice(ODD_VALUES)
    depth = rng.randint(1, 40)  # around MAX_JSON_DEPTH
    value = rng.choice(ODD_TEXT[:6])
    for _ in range(depth):
        value = [value] if rng.random() < 0.5 else {"k": value}
    return value


def _mutate_object(rng: random.Random, obj: dict, keep: tuple[str, ...] = ()) -> dict:
    obj = dict(obj)
    for _ in range(rng.randint(1, 3)):
        keys = [k for k in obj if k not in keep]
        action = rng.random()
        if action < 0.25 and keys:
            del obj[rng.choice(keys)]  # missing field
        elif action < 0.65 and keys:
            name = rng.choice(keys)
            value = obj[name]
            if isinstance(value, list) and value and isinstance(value[0], dict) and rng.random() < 0.6:
                obj[name] = [_mutate_object(rng, item) if rng.random() < 0.7 else _odd(rng) for item in value]
            elif isinstance(value, dict) and rng.random() < 0.6:
                obj[name] = _mutate_object(rng, value)
            elif rng.random() < 0.2:
                obj[name] = [value] if rng.random() < 0.5 else {"value": value}  # wrong nesting
            elif rng.random() < 0.2 and isinstance(value, (list, dict)):
                obj[name] = json.dumps(value, ensure_ascii=False)  # a list sent as a string
            else:
                obj[name] = _odd(rng)  # wrong type or odd text
        elif action < 0.85:
            obj[rng.choice(FOREIGN_FIELDS)] = _odd(rng) if rng.random() < 0.5 else "x"  # extra field
        elif keys:
            name = rng.choice(keys)
            value = obj[name]
            if isinstance(value, str):  # odd Unicode inside an otherwise plausible value
                obj[name] = value + rng.choice(ODD_TEXT[:9])
    return obj


def _encode(rng: random.Random, body: dict) -> tuple[str, bytes]:
    """The wire text: raw UTF-8 when the body can be written so, else ASCII escapes (lone surrogates)."""
    try:
        text = json.dumps(body, ensure_ascii=False)
        raw = text.encode("utf-8")
        if rng.random() < 0.2:
            text = json.dumps(body)
            raw = text.encode("ascii")
    except UnicodeEncodeError:
        text = json.dumps(body)
        raw = text.encode("ascii")
    return text, raw


def _post(client, kind: str, name: str, body: dict, rng: random.Random):
    text, raw = _encode(rng, body)
    try:  # canonical form when it can be computed, else the body as sent
        canonical = None if rng.random() < 0.3 else json.dumps(
            {k: body[k] for k in sorted(body) if body[k] is not None}, separators=(",", ":"), ensure_ascii=False
        ).encode("utf-8")
    except UnicodeEncodeError:
        canonical = None
    sign_raw = text if canonical is None else None
    if kind == "kit":
        headers = kit_headers(KIT_KEY, body, raw=sign_raw) if sign_raw is not None else kit_headers(KIT_KEY, body)
        return client.post(f"/produce/produceAPI/v2/{name}", data=raw, headers=headers)
    query = basic_query(BASIC_KEY, body, raw=sign_raw) if sign_raw is not None else basic_query(BASIC_KEY, body)
    return client.post("/produce", query_string=query, data=raw, headers={"Content-Type": "application/json"})


def _state_digest() -> str:
    """Everything the bridge stores except the call audit (refusals are audited by design)."""
    digest = hashlib.sha256()
    for table in db.metadata.sorted_tables:
        if table.name == "kg_sync_call":
            continue
        order = list(table.primary_key.columns) or list(table.columns)
        for row in db.session.execute(db.select(table).order_by(*order)):
            digest.update(repr(tuple(row)).encode("utf-8", "backslashreplace"))
    db.session.rollback()
    return digest.hexdigest()


def _seed(kg, valid):
    for kind, name, body in valid:
        if name in ("releaseInstance", "changeInstanceCheck", "queryInstance"):
            continue
        ok(kg.kit(name, body) if kind == "kit" else kg.basic(body))


def test_signed_mutated_bodies_never_fail_internally(app, client, rsa_key, caplog):
    caplog.set_level(logging.WARNING)
    rng = random.Random(SEED)
    valid = _valid_bodies(rsa_key[0].public_key())
    _seed(KooGallery(client, KIT_KEY, BASIC_KEY), valid)
    deadline = time.monotonic() + TIME_BUDGET_SECONDS
    seen_codes: dict[str, int] = {}
    failures = []
    calls = 0
    with app.app_context():
        before = _state_digest()
        while calls < CALLS_PER_DATABASE and time.monotonic() < deadline:
            calls += 1
            kind, name, body = rng.choice(valid)
            keep = ("activity",) if kind == "basic" and rng.random() < 0.8 else ()
            mutated = _mutate_object(rng, body, keep)
            response = _post(client, kind, name, mutated, rng)
            if response.status_code >= 500 or response.mimetype != "application/json":
                failures.append((name, response.status_code, response.data[:200]))
                continue
            answer = response.get_json()
            code = answer["resultCode"]
            seen_codes[code] = seen_codes.get(code, 0) + 1
            after = _state_digest()
            if code == "000005":
                failures.append((name, code, answer["resultMsg"], json.dumps(mutated)[:300]))
            elif code != "000000" and after != before:
                failures.append((name, "stored from a refused body", code, json.dumps(mutated)[:300]))
            before = after
    assert failures == [], failures[:5]
    assert calls >= 500, f"only {calls} calls within {TIME_BUDGET_SECONDS}s"
    assert seen_codes.get("000002", 0) > calls // 4 and seen_codes.get("000000", 0) > 0, seen_codes
    tracebacks = [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert tracebacks == [], [r.getMessage() for r in tracebacks[:3]]


@pytest.mark.parametrize("path, headers", [
    ("/produce/produceAPI/v2/tenantSync", {}),
    ("/produce/produceAPI/v2/tenantSync", {"x-sign": "a" * 64, "x-nonce": "n1"}),
    ("/produce", {}),
])
def test_unsigned_body_with_lone_surrogate_gets_koogallery_json(client, path, headers, caplog):
    now = str(int(time.time() * 1000))
    query = {"signature": "b" * 64, "timestamp": now, "nonce": "n2"} if path == "/produce" else {}
    if "x-sign" in headers:
        headers = {**headers, "x-timestamp": now}
    raw = b'{"tenantId": "\\ud800", "instanceId": "\\ud800x", "activity": "newInstance"}'
    response = client.post(path, data=raw, query_string=query, headers={"Content-Type": "application/json", **headers})
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.get_json()["resultCode"] in ("000001", "000002")
    assert response.headers["Body-Sign"].startswith('sign_type="HMAC-SHA256"')
    assert not [r for r in caplog.records if r.exc_info]
