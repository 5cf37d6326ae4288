"""Reading KooGallery bodies: strict where safety needs it (JSON shape, depth, conflicting
duplicate keys), lenient where Huawei's own documents disagree (numbers as strings, a list sent as
a JSON string, `orgName`/`OrgName`/`name`)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from urllib.parse import urlsplit

from common import addresses
from tenants.errors import invalid


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _pairs(pairs):
    obj: dict = {}
    for key, value in pairs:
        if key in obj and obj[key] != value:
            # Two readers could see two different bodies; refuse rather than guess. Identical
            # repeats are harmless (Huawei's own singleOrgSync example repeats instanceId).
            raise ValueError(f"duplicate key {key!r} with different values")
        obj[key] = value
    return obj


def parse_json_object(raw: bytes, max_depth: int) -> dict:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise invalid("body is not UTF-8") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        body = json.loads(text, object_pairs_hook=_pairs, parse_constant=_reject_constant)
    except RecursionError:
        raise invalid(f"body is nested deeper than {max_depth} levels") from None
    except ValueError as exc:
        raise invalid(f"body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise invalid("body must be a JSON object")
    if _depth(body) > max_depth:
        raise invalid(f"body is nested deeper than {max_depth} levels")
    if "\\u" in text:  # raw NUL and lone surrogates cannot get past json.loads and decode: only escapes
        _check_text(body)
    return body


# A lone UTF-16 surrogate (the JSON escape \ud800 without its pair) is valid JSON but no text:
# it has no UTF-8 form, so it could be neither signed canonically nor stored. NUL cannot be stored
# in PostgreSQL text. Both are refused here, before anything else looks at the body.
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


def _check_text(value) -> None:
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, child in node.items():
                if _UNSTORABLE.search(key):
                    raise invalid(_unstorable_message(key))
                stack.append(child)
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, str) and _UNSTORABLE.search(node):
            raise invalid(_unstorable_message(node))


def _unstorable_message(text: str) -> str:
    char = _UNSTORABLE.search(text).group()
    if char == "\x00":
        return "body contains a NUL character (\\u0000)"
    return f"body contains a lone UTF-16 surrogate (\\u{ord(char):04x}); text must be valid Unicode"


def _depth(value) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        children = node.values() if isinstance(node, dict) else node  # only containers are stacked
        stack.extend((c, level + 1) for c in children if isinstance(c, (dict, list)))
    return deepest


# --- which interface a body belongs to --------------------------------------------------------

# The fields that say which interface a body was written for. A body posted to one interface that
# carries another's is refused: the path is not signed, so a signed applicationSync delete must not
# be replayable as a tenantSync delete.
_IDENTIFYING = {
    "tenantSync": {"domainName", "tenantCode", "name"},
    "applicationSync": {"clientId", "clientSecret"},
    "authSync": {"userList", "currentSyncTime"},
    "singleOrgSync": {"orgCode", "orgName", "parentCode"},
    "allOrgSync": {"orgInfoList", "orgInfo"},
    "basic": {"activity", "businessId", "orderLineId", "expireTime", "status", "scene", "productInfo"},
}
# No field is in two sets; fields several interfaces share (orderId, appId) are in none.


def check_interface(interface: str, body: dict) -> None:
    foreign = sorted(f for other, fields in _IDENTIFYING.items() if other != interface for f in fields if f in body)
    if interface == "tenantSync" and "appId" in body:
        foreign.append("appId")
    if foreign:
        raise invalid(f"body carries fields of another interface ({', '.join(foreign[:5])}); "
                      f"this address takes {interface} calls")


# --- fields ---------------------------------------------------------------------------------


def text(body: dict, name: str, *, required: bool = True, max_len: int = 64, allow_empty: bool = False) -> str | None:
    """A string field; numbers are accepted and written as text (KooGallery mixes the two)."""
    value = body.get(name)
    if value is None:
        if required:
            raise invalid(f"{name} is missing")
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise invalid(f"{name} must be a string")
    value = str(value).strip()
    if not value and required and not allow_empty:
        raise invalid(f"{name} is missing")
    if len(value) > max_len:
        raise invalid(f"{name} is longer than {max_len} characters")
    return value


def small_int(body: dict, name: str, allowed: tuple[int, ...], *, required: bool = True, default=None) -> int | None:
    """flag/testFlag: a number in V2 kit bodies, a string ("1") in basic ones."""
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise invalid(f"{name} is missing")
        return default
    number = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        number = int(value.strip())
    if number not in allowed:
        raise invalid(f"{name} must be one of {', '.join(map(str, allowed))}")
    return number


def choice(body: dict, name: str, allowed: tuple[str, ...], *, required: bool = True) -> str | None:
    """One of a fixed set of words, case-insensitive (FREEZE, RENEWAL_CHANGE, ...)."""
    value = text(body, name, required=required, max_len=max(map(len, allowed)) + 8)
    if value is None:
        return None
    if value.upper() not in allowed:
        raise invalid(f"{name} must be one of {', '.join(allowed)}")
    return value.upper()


def quantity(body: dict, name: str) -> int:
    """A purchased quantity (linearValue): a whole number from 0 to 10^9, as a number or digits."""
    value = body.get(name)
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10**9:
        raise invalid(f"{name} must be a whole number from 0 to 1000000000")
    return value


def json_object(body: dict, name: str) -> dict:
    value = body.get(name)
    if value is None:
        raise invalid(f"{name} is missing")
    if not isinstance(value, dict):
        raise invalid(f"{name} must be an object")
    return value


def test_flag(body: dict) -> bool:
    return small_int(body, "testFlag", (0, 1), required=False) == 1


def sync_time(body: dict, name: str) -> str:
    """yyyyMMddHHmmssSSS (UTC+8). Shorter forms are padded so they compare as text."""
    value = text(body, name)
    if not value.isascii() or not value.isdigit() or not 14 <= len(value) <= 17:
        raise invalid(f"{name} must be yyyyMMddHHmmssSSS")
    return value.ljust(17, "0")


def expire_time(body: dict, name: str) -> datetime:
    """yyyyMMddHHmmss (UTC) as documented; Huawei's own example sends 17 digits (milliseconds)."""
    value = text(body, name)
    if not value.isascii() or not value.isdigit() or len(value) not in (14, 17):
        raise invalid(f"{name} must be yyyyMMddHHmmss (UTC)")
    try:
        return datetime.strptime(value[:14], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        raise invalid(f"{name} must be yyyyMMddHHmmss (UTC)") from None


def boolean_text(value, name: str) -> bool:
    """authSync `enable`: the string "true"/"false" (a real JSON boolean is accepted too)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise invalid(f"{name} must be \"true\" or \"false\"")


# --- lists that may arrive as JSON strings -----------------------------------------------------

_UNQUOTED_KEY = re.compile(r'([{,]\s*)([A-Za-z_][A-Za-z0-9_]*)\s*:')


def json_list(body: dict, *names: str) -> tuple[str, list]:
    """The first of `names` present, as a list: a JSON array, a string holding one, or a string
    holding the lax form of Huawei's example (`[{orgCode:"1", ...}]`, unquoted keys)."""
    for name in names:
        if name in body and body[name] is not None:
            value = body[name]
            break
    else:
        raise invalid(f"{names[0]} is missing")
    if isinstance(value, str):
        value = value.strip() or "[]"
        try:
            value = json.loads(value)
        except ValueError:
            try:
                value = json.loads(_UNQUOTED_KEY.sub(r'\1"\2":', value))
            except ValueError:
                raise invalid(f"{name} is not a JSON array") from None
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise invalid(f"{name} must be a list of objects")
    return name, value


# --- domainName ---------------------------------------------------------------------------------


def normalise_domain_name(value: str, *, allow_insecure: bool, allowed_networks=()) -> str:
    """`https://host[:port][/path]` without a trailing slash (spec §5.1, §11 U7)."""
    value = value.strip()
    if "://" not in value:
        value = "https://" + value
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise invalid("domainName is not a valid URL") from None
    host = (parts.hostname or "").lower()
    if parts.scheme.lower() not in ("https", "http") or not host:
        raise invalid("domainName must be an https URL or a host name")
    if parts.username or parts.password or parts.query or parts.fragment or " " in value:
        raise invalid("domainName must not carry credentials, a query or a fragment")
    if not allow_insecure:
        if parts.scheme.lower() != "https":
            raise invalid("domainName must use https")
        if addresses.host_refusal(host, addresses.parse_networks(allowed_networks)) is not None:
            raise invalid("domainName must be a public host name, not an internal address")
    netloc = host if port is None else f"{host}:{port}"
    if ":" in host:
        netloc = f"[{host}]" if port is None else f"[{host}]:{port}"
    return f"{parts.scheme.lower()}://{netloc}{parts.path.rstrip('/')}"
