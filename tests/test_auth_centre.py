"""The outbound client on its own: exact requests, and every way an authentication centre fails."""

from __future__ import annotations

import socket
import threading
import tracemalloc
from urllib.parse import parse_qs

import pytest
import requests
import responses
from prometheus_client import REGISTRY

from sso.auth_centre import AuthCentreClient, AuthCentreError, Client
from tests.hostile_centre import HostileCentre

IDP = "https://idp.example.com/t/acme"
CLIENT = Client(IDP, "client-1", "secret-1")
TOKEN_URL = f"{IDP}/api/v1/oauth2/token"
USERINFO_URL = f"{IDP}/api/v1/oauth2/userinfo"


@pytest.fixture
def idp():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def client():
    return AuthCentreClient(connect_timeout=1, read_timeout=2, pool_size=4)


def form(call) -> dict:
    return {k: v[0] for k, v in parse_qs(call.request.body).items()}


def test_exchange_sends_exactly_the_documented_form(idp, client):
    idp.post(TOKEN_URL, json={"access_token": "at", "token_type": "Bearer", "expires_in": 7200,
                              "scope": "get_user_info", "refresh_token": "rt"})
    tokens = client.exchange_code(CLIENT, "the-code", "https://bridge.example.com/sso/callback", "verifier-1")
    assert (tokens.access_token, tokens.refresh_token, tokens.expires_in) == ("at", "rt", 7200)
    call = idp.calls[0]
    assert call.request.headers["Content-Type"].startswith("application/x-www-form-urlencoded")
    assert form(call) == {"grant_type": "authorization_code", "code": "the-code", "client_id": "client-1",
                          "client_secret": "secret-1", "redirect_uri": "https://bridge.example.com/sso/callback",
                          "code_verifier": "verifier-1"}


def test_refresh_token_is_optional_in_the_answer(idp, client):
    idp.post(TOKEN_URL, json={"access_token": "at", "token_type": "bearer"})
    tokens = client.exchange_code(CLIENT, "c", "https://b/cb")
    assert tokens.refresh_token is None and tokens.expires_in == 7200
    assert "code_verifier" not in form(idp.calls[0])


@pytest.mark.parametrize("answer, reason", [
    (dict(status=400, json={"error": "invalid_grant", "error_description": "Invalid authorization code"}), "invalid_grant"),
    (dict(status=401, json={"error": "invalid_client", "error_description": "Bad client credentials"}), "invalid_client"),
    (dict(status=403, body="<html>Forbidden</html>", content_type="text/html"), "invalid_client"),
    (dict(status=502, body="<html>Bad gateway</html>", content_type="text/html"), "server_error"),
    (dict(status=503, json={"error": "busy"}), "server_error"),
    (dict(status=200, body="{not json", content_type="application/json"), "garbage"),
    (dict(status=200, json=["a", "list"]), "garbage"),
    (dict(status=200, json={"token_type": "Bearer"}), "garbage"),
    (dict(status=200, json={"access_token": "at", "token_type": "mac"}), "garbage"),
    (dict(status=302, headers={"Location": "https://elsewhere.example.com/steal"}), "redirect"),
    (dict(body=requests.ConnectTimeout("slow")), "timeout"),
    (dict(body=requests.ReadTimeout("slow")), "timeout"),
    (dict(body=requests.ConnectionError("refused")), "unreachable"),
])
def test_exchange_failures_have_a_reason(idp, client, answer, reason):
    idp.post(TOKEN_URL, **answer)
    with pytest.raises(AuthCentreError) as err:
        client.exchange_code(CLIENT, "c", "https://b/cb")
    assert err.value.reason == reason
    assert len(idp.calls) == 1  # a redirect is never followed


def test_secret_is_not_in_error_details(idp, client):
    idp.post(TOKEN_URL, status=400, json={"error": "invalid_client", "error_description": "secret-1 is wrong"})
    with pytest.raises(AuthCentreError) as err:
        client.exchange_code(CLIENT, "c", "https://b/cb")
    assert err.value.reason == "invalid_client"


def test_userinfo_sends_bearer_and_returns_fields(idp, client):
    idp.get(USERINFO_URL, json={"userName": "zhangsan", "name": "张三", "tenant": "t1"})
    info = client.userinfo(IDP, "at-1")
    assert info["userName"] == "zhangsan"
    assert idp.calls[0].request.headers["Authorization"] == "Bearer at-1"
    assert idp.calls[0].request.headers["Accept"] == "application/json"


@pytest.mark.parametrize("answer, reason", [
    (dict(status=401, json={"error": "unauthorized", "error_description": "Full authentication is required"}), "unauthorized"),
    (dict(status=200, json={"name": "no user name"}), "garbage"),
    (dict(status=200, json={"userName": ""}), "garbage"),
    (dict(status=200, json={"userName": "x" * 65}), "garbage"),
    (dict(status=200, body="<html>", content_type="text/html"), "garbage"),
    (dict(status=500), "server_error"),
    (dict(status=301, headers={"Location": "http://169.254.169.254/"}), "redirect"),
    (dict(body=requests.ReadTimeout("slow")), "timeout"),
])
def test_userinfo_failures_have_a_reason(idp, client, answer, reason):
    idp.get(USERINFO_URL, **answer)
    with pytest.raises(AuthCentreError) as err:
        client.userinfo(IDP, "at")
    assert err.value.reason == reason


def test_refresh_sends_refresh_grant_and_keeps_old_refresh_token_if_not_rotated(idp, client):
    idp.post(TOKEN_URL, json={"access_token": "at2", "token_type": "Bearer", "expires_in": 3600})
    tokens = client.refresh(CLIENT, "rt-1")
    assert (tokens.access_token, tokens.refresh_token, tokens.expires_in) == ("at2", "rt-1", 3600)
    body = form(idp.calls[0])
    assert body["grant_type"] == "refresh_token" and body["refresh_token"] == "rt-1"
    assert body["client_id"] == "client-1" and body["client_secret"] == "secret-1"


def test_refresh_rejected_is_invalid_grant(idp, client):
    idp.post(TOKEN_URL, status=400, json={"error": "invalid_grant", "error_description": "Invalid refresh token"})
    with pytest.raises(AuthCentreError) as err:
        client.refresh(CLIENT, "rt-1")
    assert err.value.reason == "invalid_grant"


def test_connections_are_pooled_per_host(client):
    assert client._adapter("https://a.example.com/") is client._adapter("https://a.example.com/")
    assert client._adapter("https://a.example.com/") is not client._adapter("https://b.example.com/")


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "169.254.169.254", "192.168.0.1", "::1"])
def test_hosts_resolving_to_private_addresses_are_never_called(idp, client, monkeypatch, address):
    import socket

    monkeypatch.setattr(socket, "getaddrinfo", lambda host, port, *a, **k: [
        (socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))])
    with pytest.raises(AuthCentreError) as err:
        client.exchange_code(Client("https://rebound.example.net", "c", "s"), "code", "https://b/cb")
    assert err.value.reason == "forbidden_host" and not idp.calls


def test_unresolvable_host_is_unreachable(idp, client):
    with pytest.raises(AuthCentreError) as err:
        client.userinfo("https://no-such-host.invalid", "at")
    assert err.value.reason == "unreachable"


def test_private_hosts_allowed_for_the_local_simulator(idp):
    local = AuthCentreClient(connect_timeout=1, read_timeout=1, pool_size=1, allow_private=True)
    idp.get("http://127.0.0.1:5001/t/acme/api/v1/oauth2/userinfo", json={"userName": "u"})
    assert local.userinfo("http://127.0.0.1:5001/t/acme", "at")["userName"] == "u"


# --- hostile centres (findings 1, 3, 6, 7 of "Hostile and failing parties") ------------------------



@pytest.fixture
def centre():
    server = HostileCentre(drip_interval=0.05).start()
    yield server
    server.stop()


def local_client(**limits) -> AuthCentreClient:
    """Allowed to call the kit on 127.0.0.1, as the local simulator's bridge is."""
    settings = {"total_timeout": 1, "allow_private": True} | limits
    return AuthCentreClient(connect_timeout=1, read_timeout=5, pool_size=4, **settings)


def wait_for(condition, what: str, timeout: float = 10) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_total_deadline_ends_a_dripping_token_answer(centre):
    """Finding 1: a byte every 50 ms never trips a 5 s per-read timeout; the total deadline does."""
    domain = centre.tenant("drip", token="drip")
    with pytest.raises(AuthCentreError) as err:
        local_client().exchange_code(Client(domain, "c", "s"), "junk", "https://b/cb")
    assert err.value.reason == "timeout"


def test_total_deadline_ends_an_answer_that_hangs_after_its_headers(centre):
    domain = centre.tenant("hang", userinfo="hang")
    with pytest.raises(AuthCentreError) as err:
        local_client().userinfo(domain, "at")
    assert err.value.reason == "timeout"


def test_gzip_bomb_is_refused_within_the_cap(centre):
    """Finding 3: ~600 KB of gzip inflating to 600 MB; the bridge inflates no more than the cap."""
    domain = centre.tenant("bomb", userinfo="bomb")
    tracemalloc.start()
    try:
        with pytest.raises(AuthCentreError) as err:
            local_client(total_timeout=5).userinfo(domain, "at")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert err.value.reason == "too_large"
    assert peak < 8 * 1024 * 1024, f"peak Python allocation {peak} bytes"


def test_answer_without_length_is_cut_at_the_cap(centre):
    domain = centre.tenant("huge", userinfo="huge")
    with pytest.raises(AuthCentreError) as err:
        local_client(total_timeout=5).userinfo(domain, "at")
    assert err.value.reason == "too_large"


def test_declared_oversized_answer_is_refused_unread(idp):
    idp.get(USERINFO_URL, body=b'{"userName": "' + b"x" * 70_000 + b'"}', content_type="application/json")
    with pytest.raises(AuthCentreError) as err:
        AuthCentreClient(1, 2, 4, max_response_bytes=64 * 1024).userinfo(IDP, "at")
    assert err.value.reason == "too_large"


def test_gzip_answers_within_the_cap_are_read(idp):
    import gzip
    import json

    idp.get(USERINFO_URL, body=gzip.compress(json.dumps({"userName": "zhangsan"}).encode()),
            headers={"Content-Encoding": "gzip"}, content_type="application/json")
    assert AuthCentreClient(1, 2, 4).userinfo(IDP, "at")["userName"] == "zhangsan"


@pytest.mark.parametrize("call", ["token", "userinfo"])
def test_deeply_nested_json_is_garbage_not_a_crash(idp, call):
    deep = "[" * 5000 + "]" * 5000
    if call == "token":
        idp.post(TOKEN_URL, body=deep, content_type="application/json")
    else:
        idp.get(USERINFO_URL, body=deep, content_type="application/json")
    client = AuthCentreClient(1, 2, 4)
    with pytest.raises(AuthCentreError) as err:
        client.exchange_code(CLIENT, "c", "https://b/cb") if call == "token" else client.userinfo(IDP, "at")
    assert err.value.reason == "garbage"


def test_redirect_to_an_internal_address_is_never_followed(centre):
    domain = centre.tenant("redirect", token="redirect_internal")
    with pytest.raises(AuthCentreError) as err:
        local_client().exchange_code(Client(domain, "c", "s"), "code", "https://b/cb")
    assert err.value.reason == "redirect" and centre.hits("steal") == 0


@pytest.fixture
def connections(monkeypatch):
    """Every address a socket connects to; only loopback is really connected (nothing leaves the machine)."""
    seen = []
    real_connect = socket.socket.connect

    def connect(sock, address):
        seen.append(address[0])
        if not address[0].startswith("127."):
            raise ConnectionRefusedError("test: no connections leave this machine")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    return seen


def resolver(monkeypatch, name: str, answers: list[str]):
    """`name` resolves to answers[0] the first time, answers[1] the next time, ...: DNS rebinding."""
    lookups = []
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host != name:
            return real(host, port, *args, **kwargs)
        address = answers[min(len(lookups), len(answers) - 1)]
        lookups.append(address)
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return lookups


def test_dns_rebinding_cannot_redirect_the_connection(centre, monkeypatch, connections):
    """Finding 6: the first answer is public (and checked), the second points at the bridge's own
    network. The bridge resolves once and connects to the address it checked."""
    domain = f"http://rebind.example.com:{centre.port}/good"
    centre.tenant("good")
    lookups = resolver(monkeypatch, "rebind.example.com", ["93.184.216.34", "127.0.0.1"])
    with pytest.raises(AuthCentreError) as err:
        AuthCentreClient(1, 1, 4, total_timeout=1).userinfo(domain, "at")
    assert err.value.reason == "unreachable"
    assert lookups == ["93.184.216.34"] and connections == ["93.184.216.34"]
    assert centre.hits("good") == 0


def test_connection_goes_to_the_checked_address_with_the_host_name_kept(centre, monkeypatch, connections):
    centre.tenant("good", identity={"userName": "zhangsan"})
    lookups = resolver(monkeypatch, "pinned.example.com", ["127.0.0.1", "10.9.9.9"])
    client = AuthCentreClient(1, 1, 4, total_timeout=2, allowed_networks=["127.0.0.1/32"])
    domain = f"http://pinned.example.com:{centre.port}/good"
    assert client.userinfo(domain, "at")["userName"] == "zhangsan"
    assert lookups == ["127.0.0.1"] and connections == ["127.0.0.1"]
    assert centre.host_headers == [f"pinned.example.com:{centre.port}"]
    # The next call resolves again, and what it finds is checked again.
    assert _reason(lambda: client.userinfo(domain, "at")) == "forbidden_host"
    assert connections == ["127.0.0.1"]


def _certificate(tmp_path, name: str):
    """A CA and a certificate for `name` it signed: (ca file, chain file, key file)."""
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def build(subject, issuer, key, signer, *, ca: bool, san: str | None = None):
        now = datetime.now(UTC)
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
                   .not_valid_after(now + timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
    ca = build(ca_name, ca_name, ca_key, ca_key, ca=True)
    leaf = build(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]), ca_name, leaf_key, ca_key, ca=False,
                 san=name)
    pem = serialization.Encoding.PEM
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(pem))
    (tmp_path / "chain.pem").write_bytes(leaf.public_bytes(pem) + ca.public_bytes(pem))
    (tmp_path / "key.pem").write_bytes(leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                              serialization.NoEncryption()))
    return str(tmp_path / "ca.pem"), str(tmp_path / "chain.pem"), str(tmp_path / "key.pem")


@pytest.mark.parametrize("certificate_for, works", [("idp.example.com", True), ("other.example.com", False)])
def test_pinned_tls_keeps_sni_and_certificate_checks_on_the_host_name(tmp_path, monkeypatch, connections,
                                                                      certificate_for, works):
    ca, chain, key = _certificate(tmp_path, certificate_for)
    server = HostileCentre().start(tls=(chain, key))
    try:
        server.tenant("good", identity={"userName": "zhangsan"})
        resolver(monkeypatch, "idp.example.com", ["127.0.0.1"])
        client = AuthCentreClient(1, 1, 4, total_timeout=2, allowed_networks=["127.0.0.1/32"], verify=ca)
        domain = f"https://idp.example.com:{server.port}/good"
        if works:
            assert client.userinfo(domain, "at")["userName"] == "zhangsan"
        else:
            with pytest.raises(AuthCentreError) as err:
                client.userinfo(domain, "at")
            assert err.value.reason == "unreachable" and server.hits("good") == 0
        assert server.server_names == ["idp.example.com"]
    finally:
        server.stop()


@pytest.mark.parametrize("domain", [
    "https://192.0.0.8", "https://[64:ff9b::7f00:1]", "https://[64:ff9b::a9fe:a9fe]", "https://[2002:7f00:1::1]",
    "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]", "https://[::ffff:7f00:1]", "https://2130706433",
    "https://0x7f000001", "https://017700000001", "https://127.1", "https://0", "https://localhost",
    "https://metadata", "https://printer.local",
])
def test_internal_address_forms_are_refused_at_connect_time(domain, connections):
    """Finding 7: rows stored before the policy, or spellings the old check let through."""
    with pytest.raises(AuthCentreError) as err:
        AuthCentreClient(1, 1, 4, total_timeout=1).userinfo(domain, "at")
    assert err.value.reason == "forbidden_host" and connections == []


@pytest.mark.parametrize("address", ["64:ff9b::a00:5", "2002:a00:5::1", "192.0.0.8", "100.64.1.1"])
def test_names_resolving_to_tunnelled_or_protocol_addresses_are_refused(monkeypatch, connections, address):
    resolver(monkeypatch, "tunnel.example.com", [address])
    with pytest.raises(AuthCentreError) as err:
        AuthCentreClient(1, 1, 4, total_timeout=1).userinfo("https://tunnel.example.com", "at")
    assert err.value.reason == "forbidden_host" and connections == []


def test_allowed_network_is_reachable(monkeypatch, idp):
    resolver(monkeypatch, "idp.cloud.example.com", ["100.64.1.1"])
    idp.get("https://idp.cloud.example.com/api/v1/oauth2/userinfo", json={"userName": "u"})
    client = AuthCentreClient(1, 1, 4, allowed_networks="100.64.0.0/10")
    assert client.userinfo("https://idp.cloud.example.com", "at")["userName"] == "u"


def test_a_tenant_over_its_concurrency_limit_is_refused_at_once(centre):
    slow = centre.tenant("slow", userinfo="hang")
    other = centre.tenant("other", identity={"userName": "zhangsan"})
    client = local_client(total_timeout=3, max_concurrent_per_tenant=2)
    outcomes = []
    threads = [threading.Thread(target=lambda: outcomes.append(_reason(lambda: client.userinfo(slow, "at"))))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    wait_for(lambda: centre.hits("slow") == 2, "two calls in flight")
    with pytest.raises(AuthCentreError) as err:
        client.userinfo(slow, "at")
    assert err.value.reason == "busy" and err.value.retry_after
    assert centre.hits("slow") == 2  # refused without a call
    assert client.userinfo(other, "at")["userName"] == "zhangsan"  # another tenant is not affected
    for thread in threads:
        thread.join()
    assert outcomes == ["timeout", "timeout"]


def _reason(fn) -> str:
    try:
        fn()
    except AuthCentreError as exc:
        return exc.reason
    return "ok"


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_circuit_opens_after_consecutive_failures_and_half_opens_after_the_cooldown(idp):
    client = AuthCentreClient(1, 2, 4, circuit_failures=3, circuit_cooldown=30)
    client.circuit.clock = clock = FakeClock()
    failing = idp.get(USERINFO_URL, status=502)
    for _ in range(3):
        assert _reason(lambda: client.userinfo(IDP, "at")) == "server_error"
    assert _reason(lambda: client.userinfo(IDP, "at")) == "circuit_open"
    assert failing.call_count == 3  # the fourth was never sent
    labels = {"host": "idp.example.com"}
    assert REGISTRY.get_sample_value("bridge_auth_centre_circuit_open", labels) == 1
    assert REGISTRY.get_sample_value("bridge_auth_centre_calls_refused_total",
                                     labels | {"reason": "circuit_open"}) >= 1

    clock.now += 31  # cool-down over: one trial, which fails and opens the circuit again
    assert _reason(lambda: client.userinfo(IDP, "at")) == "server_error"
    assert _reason(lambda: client.userinfo(IDP, "at")) == "circuit_open"
    assert failing.call_count == 4

    clock.now += 31
    idp.replace(responses.GET, USERINFO_URL, json={"userName": "back"})
    assert client.userinfo(IDP, "at")["userName"] == "back"  # the trial succeeds: closed
    assert client.userinfo(IDP, "at")["userName"] == "back"
    assert REGISTRY.get_sample_value("bridge_auth_centre_circuit_open", labels) == 0


def test_only_one_trial_call_while_half_open():
    from sso.auth_centre import CircuitBreaker

    breaker = CircuitBreaker(threshold=1, cooldown=10, clock=(clock := FakeClock()))
    breaker.record("https://h", "timeout", trial=False)
    clock.now += 11
    assert breaker.admit("https://h") is True
    with pytest.raises(AuthCentreError) as err:
        breaker.admit("https://h")
    assert err.value.reason == "circuit_open"
    breaker.record("https://h", "invalid_grant", trial=True)  # an answer: the centre is back
    assert breaker.admit("https://h") is False


def test_junk_codes_never_open_the_circuit(idp):
    """invalid_grant is the user's (or an attacker's) junk code, not a failing centre."""
    client = AuthCentreClient(1, 2, 4, circuit_failures=2)
    junk = idp.post(TOKEN_URL, status=400, json={"error": "invalid_grant", "error_description": "bad code"})
    for _ in range(5):
        assert _reason(lambda: client.exchange_code(CLIENT, "junk", "https://b/cb")) == "invalid_grant"
    assert junk.call_count == 5


def test_a_proxy_in_the_environment_never_sees_a_centre_call(centre, monkeypatch):
    """The client secret and the user's token go only to the centre's checked address: a proxy
    named by the environment (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY) is never used."""
    import socket

    proxy = socket.socket()
    proxy.bind(("127.0.0.1", 0))
    proxy.listen()
    proxy.settimeout(0.2)
    address = f"http://127.0.0.1:{proxy.getsockname()[1]}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, address)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    domain = centre.tenant("calm")
    try:
        client = local_client(total_timeout=5)
        tokens = client.exchange_code(Client(domain, "c", "s"), "code", "https://b/cb")
        assert client.userinfo(domain, tokens.access_token)["userName"]
        with pytest.raises(TimeoutError):  # nothing ever connected to the proxy
            proxy.accept()
    finally:
        proxy.close()
