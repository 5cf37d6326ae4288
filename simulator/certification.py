"""The marketplace's certification and daily probes (拨测), played as KooGallery plays them: the
seller's saved debug cases (one per interface, testFlag 1, fixed bodies) replayed in a random
order, many rounds, each with a fresh nonce and signature; and an identical re-send of a call
whose answer was "lost" (same nonce, same body). Every answer must be 000000 for the listing to
stay on sale."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field

from simulator.driver import SUCCESS, KooGalleryDriver
from simulator.signing import encrypt_client_secret

DEBUG_TENANT = "debug0tenant0seller0credential00"


def saved_debug_cases(app_id: str, public_key, *, domain_name: str = "https://debug.example.com") -> list[tuple]:
    """(interface, body) per saved case, as the seller typed them once in the seller centre."""
    secret = encrypt_client_secret("debug-client-secret", public_key) if public_key is not None else "not-encrypted"
    stamp = "20260101000000000"
    kit = {"instanceId": "", "tenantId": DEBUG_TENANT, "testFlag": 1, "timeStamp": stamp}
    return [
        ("tenantSync", {**kit, "orderId": "", "tenantCode": "debugseller", "name": "调试企业",
                        "domainName": domain_name, "flag": 1}),
        ("applicationSync", {**kit, "appId": app_id, "clientId": "debug-client", "clientSecret": secret, "flag": 1}),
        ("authSync", {**kit, "appId": app_id, "currentSyncTime": stamp, "flag": 1,
                      "userList": [{"userName": "debug-user", "name": "调试用户", "enable": "true", "role": "user"}]}),
        ("singleOrgSync", {**kit, "orgCode": "DEBUG1", "orgName": "调试部门", "parentCode": "", "flag": 1}),
        ("allOrgSync", {**kit, "orgInfoList": [{"orgCode": "DEBUG1", "orgName": "调试部门", "parentCode": ""}],
                        "flag": 1}),
        ("basic", {"activity": "newInstance", "orderId": "CSDEBUG0000000001", "orderLineId": "CSDEBUG0000000001-1",
                   "businessId": "debug-instance-0001", "testFlag": "1"}),
        ("basic", {"activity": "queryInstance", "instanceId": "debug-instance-0001", "testFlag": "1"}),
        ("basic", {"activity": "refreshInstance", "instanceId": "debug-instance-0001", "orderId": "CSDEBUGRENEW1",
                   "orderLineId": "CSDEBUGRENEW1-1", "scene": "RENEWAL", "expireTime": "20270101000000",
                   "testFlag": "1"}),
        ("basic", {"activity": "updateInstanceStatus", "instanceId": "debug-instance-0001", "status": "FREEZE",
                   "testFlag": "1"}),
        ("basic", {"activity": "releaseInstance", "instanceId": "debug-instance-0001", "testFlag": "1"}),
        ("basic", {"activity": "upgradeInstance", "instanceId": "debug-instance-0001", "orderId": "CSDEBUGUP1",
                   "orderLineId": "CSDEBUGUP1-1", "testFlag": "1"}),
        ("basic", {"activity": "changeInstanceCheck", "instanceId": "debug-instance-0001", "testFlag": "1",
                   "productInfo": {"productId": "P-DEBUG", "skuCode": "SKU-DEBUG", "linearValue": 10,
                                   "productName": "调试规格"}}),
    ]


@dataclass
class ProbeReport:
    calls: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


def _name(interface: str, body: dict) -> str:
    return f"basic:{body['activity']}" if interface == "basic" else interface


def run_probe(driver: KooGalleryDriver, cases: list[tuple], *, rounds: int, seed: int | None = None) -> ProbeReport:
    """Replay every case `rounds` times, shuffled each round; collect every non-000000 answer."""
    rng = random.Random(seed)
    report = ProbeReport()
    previous, driver.raise_on_error = driver.raise_on_error, False
    try:
        for round_no in range(1, rounds + 1):
            order = list(cases)
            rng.shuffle(order)
            for interface, body in order:
                answer = driver.send_basic(body) if interface == "basic" else driver.send_kit(interface, body)
                report.calls += 1
                if answer.get("resultCode") != SUCCESS:
                    report.failures.append(f"round {round_no} {_name(interface, body)}: {answer.get('resultCode')} "
                                           f"{answer.get('resultMsg', '')}")
    finally:
        driver.raise_on_error = previous
    return report


def resend_after_lost_answer(driver: KooGalleryDriver, interface: str, body: dict) -> tuple[dict, dict]:
    """Send a call, "lose" its answer, send it again with the same nonce and body (fresh
    timestamp and signature, as the marketplace's retry does). Returns both answers."""
    nonce = uuid.uuid4().hex
    send = (lambda: driver.send_basic(body, nonce=nonce)) if interface == "basic" else (
        lambda: driver.send_kit(interface, body, nonce=nonce))
    previous, driver.raise_on_error = driver.raise_on_error, False
    try:
        return send(), send()
    finally:
        driver.raise_on_error = previous
