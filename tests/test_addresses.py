"""The public-address policy (common/addresses.py) on its own: every spelling of a non-public
address is refused, public ones pass, the operator's allow-list wins."""

from __future__ import annotations

import ipaddress
import subprocess
import sys

import pytest

from common import addresses

REFUSED_HOSTS = [
    # IPv4 in the forms inet_aton accepts
    "127.0.0.1", "2130706433", "0x7f000001", "017700000001", "127.1", "0x7f.1", "0177.0.0.1", "0", "0.0.0.0",
    "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "100.64.0.1", "192.0.0.8", "192.0.0.170",
    "192.0.2.1", "198.51.100.7", "203.0.113.9", "198.18.0.1", "224.0.0.1", "240.0.0.1", "255.255.255.255",
    # numeric-looking but no address: libraries disagree, so never taken for a name
    "08", "1.2.3.4.5", "0x1g", "1.2.3.256.com.1",
    # IPv6
    "::1", "[::1]", "::", "::ffff:127.0.0.1", "::ffff:8.8.8.8", "::127.0.0.1", "fe80::1", "fc00::1", "fd12:3456::1",
    "ff02::1", "2001:db8::1", "64:ff9b::7f00:1", "64:ff9b::a00:1", "64:ff9b:1::808:808", "2002:7f00:1::1",
    "2002:a00:1::1", "2001:0:4136:e378:8000:63bf:3fff:fdd2", "100::1", "fec0::1",
    # names
    "localhost", "LOCALHOST.", "app.localhost", "metadata.google.internal", "printer.local", "nas.home.arpa",
    "metadata", "postgres",
]
PUBLIC_HOSTS = ["93.184.216.34", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "64:ff9b::808:808",
                "2002:808:808::1", "idp.example.com", "oneaccess.huaweicloud.com", "1e100.net", "example.com."]


@pytest.mark.parametrize("host", REFUSED_HOSTS)
def test_non_public_hosts_are_refused(host):
    assert addresses.host_refusal(host, hosts_file="/nonexistent") is not None


@pytest.mark.parametrize("host", PUBLIC_HOSTS)
def test_public_hosts_pass(host):
    assert addresses.host_refusal(host, hosts_file="/nonexistent") is None


@pytest.mark.parametrize("text, address", [
    ("2130706433", "127.0.0.1"), ("0x7f000001", "127.0.0.1"), ("017700000001", "127.0.0.1"), ("127.1", "127.0.0.1"),
    ("0", "0.0.0.0"), ("0x7f.0.1", "127.0.0.1"), ("1.2.65535", "1.2.255.255"), ("0x", "0.0.0.0"),
])
def test_ipv4_numbers_parse_as_inet_aton_does(text, address):
    assert addresses.parse_ipv4_number(text) == ipaddress.IPv4Address(address)


@pytest.mark.parametrize("text", ["2130706433", "0x7f000001", "017700000001", "127.1", "0", "1.2.65535"])
def test_parser_agrees_with_the_c_library(text):
    import socket

    assert addresses.parse_ipv4_number(text) == ipaddress.IPv4Address(socket.inet_aton(text))


@pytest.mark.parametrize("text", ["256.1.1.1", "1.2.3.4.5", "4294967296", "1.16777216", "abc", "", "1..2", "08"])
def test_non_numbers_are_not_ipv4(text):
    assert addresses.parse_ipv4_number(text) is None


def test_allowed_networks_let_an_internal_network_through():
    allowed = addresses.parse_networks("100.64.0.0/10, fd00:1::/32")
    assert addresses.host_refusal("100.100.2.3", allowed) is None
    assert addresses.address_refusal("fd00:1::5", allowed) is None
    assert addresses.host_refusal("10.0.0.1", allowed) is not None
    assert addresses.address_refusal("64:ff9b::6464:203", allowed) is None  # NAT64 of an allowed address


def test_bad_allow_list_entries_are_a_clear_error():
    with pytest.raises(ValueError, match="not a network in CIDR notation"):
        addresses.parse_networks(["100.64.0.0/10", "internal"])


def test_names_in_the_hosts_file_are_refused(tmp_path):
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n10.0.0.7 db.corp.example.com db # the database\n# 10.0.0.8 old.example.com\n")
    assert "listed in" in addresses.host_refusal("DB.corp.example.com", hosts_file=str(hosts))
    assert addresses.host_refusal("old.example.com", hosts_file=str(hosts)) is None


def test_module_imports_nothing_of_the_bridge():
    code = ("import sys, common.addresses; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tenants','sso','admin','ops','keys')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
