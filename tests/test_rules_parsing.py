"""How the bridge reads KooGallery bodies (tenants/parsing.py), as KooGallery sees it: which bodies and
fields are accepted, what they are read as, and the exact resultCode/resultMsg of each refusal."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tenants import parsing
from tenants.errors import SyncError


def refusal(fn, *args, **kwargs) -> tuple[str, str]:
    with pytest.raises(SyncError) as err:
        fn(*args, **kwargs)
    return err.value.code, err.value.message


def refused(message: str) -> tuple[str, str]:
    return "000002", message


# --- the body as a whole ------------------------------------------------------------------------


def test_a_json_object_is_read_as_sent():
    body = parsing.parse_json_object('{"tenantId":"t1","n":[1,{"a":"华为"}],"x":null}'.encode(), max_depth=5)
    assert body == {"tenantId": "t1", "n": [1, {"a": "华为"}], "x": None}


def test_a_byte_order_mark_is_ignored():
    assert parsing.parse_json_object('\ufeff{"a":1}'.encode(), max_depth=5) == {"a": 1}


@pytest.mark.parametrize("raw, message", [
    (b'\xff{"a":1}', "body is not UTF-8"),
    (b'[1,2]', "body must be a JSON object"),
    (b'"text"', "body must be a JSON object"),
    (b'{"a":', "body is not valid JSON: Expecting value: line 1 column 6 (char 5)"),
    (b'{"a":NaN}', "body is not valid JSON: NaN is not valid JSON"),
    (b'{"a":-Infinity}', "body is not valid JSON: -Infinity is not valid JSON"),
    (b'{"a":1,"a":2}', "body is not valid JSON: duplicate key 'a' with different values"),
    (b'{"a":"\\u0000"}', "body contains a NUL character (\\u0000)"),
    (b'{"a":"\\ud800"}', "body contains a lone UTF-16 surrogate (\\ud800); text must be valid Unicode"),
    (b'{"\\udfff":1}', "body contains a lone UTF-16 surrogate (\\udfff); text must be valid Unicode"),
    (b'{"a":["ok","\\u0000"]}', "body contains a NUL character (\\u0000)"),
    (b'{"a":{"b":{"c":"\\udc00x"}}}', "body contains a lone UTF-16 surrogate (\\udc00); text must be valid Unicode"),
])
def test_bodies_that_are_not_a_storable_json_object_are_refused(raw, message):
    assert refusal(parsing.parse_json_object, raw, max_depth=10) == refused(message)


@pytest.mark.parametrize("raw", [b'{"a":"x\x00"}', '{"a":"x\ud800"}'.encode("utf-8", "surrogatepass")])
def test_raw_nul_and_surrogate_bytes_are_refused_before_any_field_is_read(raw):
    code, message = refusal(parsing.parse_json_object, raw, max_depth=5)
    assert code == "000002" and message.startswith(("body is not valid JSON: Invalid control character",
                                                    "body is not UTF-8")), message


def test_an_escaped_backslash_before_u_is_text_not_an_escape():
    assert parsing.parse_json_object(rb'{"a":"\\u0000"}', max_depth=2) == {"a": "\\u0000"}


def test_an_identical_repeated_key_is_harmless():
    # Huawei's own singleOrgSync example repeats instanceId with the same value.
    assert parsing.parse_json_object(b'{"instanceId":"i1","instanceId":"i1"}', max_depth=3) == {"instanceId": "i1"}


@pytest.mark.parametrize("raw, depth", [
    (b'{"a":1}', 1), (b'{"a":{"b":1}}', 2), (b'{"a":[{"b":[1]}]}', 4), (b'{"a":[1,2],"b":{"c":{}}}', 3),
])
def test_nesting_up_to_the_limit_is_accepted_and_one_more_level_refused(raw, depth):
    assert parsing.parse_json_object(raw, max_depth=depth)
    assert refusal(parsing.parse_json_object, raw, max_depth=depth - 1) == refused(
        f"body is nested deeper than {depth - 1} levels")


def test_nesting_past_the_interpreter_limit_is_refused_not_crashed():
    raw = b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert refusal(parsing.parse_json_object, raw, max_depth=32) == refused("body is nested deeper than 32 levels")


# --- which interface a body belongs to --------------------------------------------------------------


@pytest.mark.parametrize("interface, body", [
    ("tenantSync", {"tenantId": "t", "tenantCode": "c", "name": "n", "domainName": "d", "orderId": "o"}),
    ("applicationSync", {"tenantId": "t", "appId": "a", "clientId": "c", "clientSecret": "s"}),
    ("authSync", {"tenantId": "t", "appId": "a", "userList": [], "currentSyncTime": "1"}),
    ("singleOrgSync", {"tenantId": "t", "orgCode": "o", "orgName": "n", "parentCode": "p"}),
    ("allOrgSync", {"tenantId": "t", "orgInfoList": []}),
    ("basic", {"activity": "newInstance", "businessId": "b", "orderId": "o", "orderLineId": "l", "productInfo": {}}),
])
def test_each_interface_accepts_its_own_fields(interface, body):
    parsing.check_interface(interface, body)


@pytest.mark.parametrize("interface, body, foreign", [
    ("tenantSync", {"tenantId": "t", "clientId": "c", "clientSecret": "s"}, "clientId, clientSecret"),
    ("tenantSync", {"tenantId": "t", "appId": "a"}, "appId"),
    ("tenantSync", {"tenantId": "t", "activity": "x", "status": 1}, "activity, status"),
    ("applicationSync", {"tenantId": "t", "domainName": "d"}, "domainName"),
    ("authSync", {"tenantId": "t", "orgInfo": {}}, "orgInfo"),
    ("singleOrgSync", {"tenantId": "t", "userList": []}, "userList"),
    ("allOrgSync", {"tenantId": "t", "orgCode": "o"}, "orgCode"),
    ("basic", {"activity": "x", "tenantCode": "c", "name": "n"}, "name, tenantCode"),
    ("basic", {"activity": "x", "clientId": "1", "clientSecret": "2", "domainName": "3", "name": "4",
               "orgCode": "5", "userList": "6"}, "clientId, clientSecret, domainName, name, orgCode"),
])
def test_a_body_with_another_interfaces_fields_is_refused(interface, body, foreign):
    assert refusal(parsing.check_interface, interface, body) == refused(
        f"body carries fields of another interface ({foreign}); this address takes {interface} calls")


# --- fields ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("value, read", [
    ("abc", "abc"), ("  abc ", "abc"), (12, "12"), (0, "0"), ("华为", "华为"), ("x" * 8, "x" * 8),
])
def test_a_text_field_is_read_as_trimmed_text(value, read):
    assert parsing.text({"f": value}, "f", max_len=8) == read


@pytest.mark.parametrize("body, message", [
    ({}, "f is missing"), ({"f": None}, "f is missing"), ({"f": ""}, "f is missing"), ({"f": "   "}, "f is missing"),
    ({"f": True}, "f must be a string"), ({"f": 1.5}, "f must be a string"), ({"f": ["a"]}, "f must be a string"),
    ({"f": {"a": 1}}, "f must be a string"), ({"f": "x" * 9}, "f is longer than 8 characters"),
])
def test_a_required_text_field_is_refused_when_absent_or_wrong(body, message):
    assert refusal(parsing.text, body, "f", max_len=8) == refused(message)


def test_the_default_text_limit_is_64_characters():
    assert parsing.text({"f": "x" * 64}, "f") == "x" * 64
    assert refusal(parsing.text, {"f": "x" * 65}, "f") == refused("f is longer than 64 characters")


def test_an_optional_text_field_may_be_absent_or_empty():
    assert parsing.text({}, "f", required=False) is None
    assert parsing.text({"f": None}, "f", required=False) is None
    assert parsing.text({"f": ""}, "f", required=False) == ""
    assert parsing.text({"f": "  "}, "f", required=False) == ""
    assert refusal(parsing.text, {"f": 3.0}, "f", required=False) == refused("f must be a string")


def test_an_empty_text_field_is_kept_where_empty_is_allowed():
    assert parsing.text({"f": ""}, "f", allow_empty=True) == ""
    assert parsing.text({"f": "  "}, "f", allow_empty=True) == ""
    assert refusal(parsing.text, {}, "f", allow_empty=True) == refused("f is missing")


@pytest.mark.parametrize("value, read", [(0, 0), (1, 1), ("1", 1), (" 0 ", 0), ("2", 2)])
def test_a_flag_is_a_number_or_digits(value, read):
    assert parsing.small_int({"flag": value}, "flag", (0, 1, 2)) == read


@pytest.mark.parametrize("body", [
    {"flag": 3}, {"flag": True}, {"flag": False}, {"flag": "one"}, {"flag": "１"}, {"flag": 1.0}, {"flag": "-1"},
    {"flag": [1]},
])
def test_a_flag_outside_its_values_is_refused(body):
    assert refusal(parsing.small_int, body, "flag", (0, 1, 2)) == refused("flag must be one of 0, 1, 2")


def test_a_missing_flag_is_refused_or_defaulted():
    assert refusal(parsing.small_int, {}, "flag", (0, 1)) == refused("flag is missing")
    assert refusal(parsing.small_int, {"flag": ""}, "flag", (0, 1)) == refused("flag is missing")
    assert parsing.small_int({}, "flag", (0, 1), required=False, default=7) == 7
    assert parsing.small_int({"flag": ""}, "flag", (0, 1), required=False) is None


@pytest.mark.parametrize("body, debug", [
    ({}, False), ({"testFlag": 0}, False), ({"testFlag": "0"}, False), ({"testFlag": 1}, True),
    ({"testFlag": "1"}, True), ({"testFlag": ""}, False),
])
def test_a_call_is_a_debug_call_when_test_flag_is_1(body, debug):
    assert parsing.test_flag(body) is debug


def test_a_test_flag_other_than_0_or_1_is_refused():
    assert refusal(parsing.test_flag, {"testFlag": 2}) == refused("testFlag must be one of 0, 1")


@pytest.mark.parametrize("value, read", [("freeze", "FREEZE"), (" Unfreeze ", "UNFREEZE"), ("FREEZE", "FREEZE")])
def test_a_choice_is_case_insensitive(value, read):
    assert parsing.choice({"s": value}, "s", ("FREEZE", "UNFREEZE")) == read


def test_a_choice_outside_its_words_is_refused():
    assert refusal(parsing.choice, {"s": "THAW"}, "s", ("FREEZE", "UNFREEZE")) == refused(
        "s must be one of FREEZE, UNFREEZE")
    # The length limit (the longest word plus a margin) is checked on the trimmed value.
    assert refusal(parsing.choice, {"s": "x" * 17}, "s", ("FREEZE", "UNFREEZE")) == refused(
        "s is longer than 16 characters")
    assert parsing.choice({"s": " " * 5 + "UNFREEZE" + " " * 5}, "s", ("UNFREEZE",)) == "UNFREEZE"


def test_an_optional_choice_may_be_absent():
    assert parsing.choice({}, "s", ("A",), required=False) is None
    assert refusal(parsing.choice, {}, "s", ("A",)) == refused("s is missing")


@pytest.mark.parametrize("value, read", [(0, 0), (5, 5), ("12", 12), (" 7 ", 7), (10**9, 10**9), (str(10**9), 10**9)])
def test_a_quantity_is_a_whole_number(value, read):
    assert parsing.quantity({"linearValue": value}, "linearValue") == read


@pytest.mark.parametrize("value", [-1, 10**9 + 1, "1000000001", True, False, 1.5, "1.5", "ten", "", "-3", None, [3], "٣"])
def test_a_quantity_that_is_not_a_whole_number_in_range_is_refused(value):
    assert refusal(parsing.quantity, {"linearValue": value}, "linearValue") == refused(
        "linearValue must be a whole number from 0 to 1000000000")


def test_a_nested_object_field():
    assert parsing.json_object({"productInfo": {"skuCode": "s"}}, "productInfo") == {"skuCode": "s"}
    assert parsing.json_object({"productInfo": {}}, "productInfo") == {}
    assert refusal(parsing.json_object, {}, "productInfo") == refused("productInfo is missing")
    assert refusal(parsing.json_object, {"productInfo": None}, "productInfo") == refused("productInfo is missing")
    assert refusal(parsing.json_object, {"productInfo": "{}"}, "productInfo") == refused(
        "productInfo must be an object")
    assert refusal(parsing.json_object, {"productInfo": []}, "productInfo") == refused("productInfo must be an object")


@pytest.mark.parametrize("value, read", [
    ("20240102030405123", "20240102030405123"), ("20240102030405", "20240102030405000"),
    ("202401020304051", "20240102030405100"), (20240102030405123, "20240102030405123"),
])
def test_a_sync_time_is_padded_to_milliseconds(value, read):
    assert parsing.sync_time({"timeStamp": value}, "timeStamp") == read


@pytest.mark.parametrize("value", ["2024010203040", "2024-01-02 03:04", "2024010203040５", "x" * 14])
def test_a_sync_time_that_is_not_digits_of_the_right_length_is_refused(value):
    assert refusal(parsing.sync_time, {"timeStamp": value}, "timeStamp") == refused(
        "timeStamp must be yyyyMMddHHmmssSSS")


def test_a_sync_time_longer_than_milliseconds_is_refused():
    assert refusal(parsing.sync_time, {"t": "1" * 18}, "t") == refused("t must be yyyyMMddHHmmssSSS")
    assert refusal(parsing.sync_time, {"t": "1" * 65}, "t") == refused("t is longer than 64 characters")


@pytest.mark.parametrize("value", ["20271231235959", "20271231235959000", "20271231235959999"])
def test_an_expire_time_is_utc_to_the_second(value):
    assert parsing.expire_time({"expireTime": value}, "expireTime") == datetime(2027, 12, 31, 23, 59, 59, tzinfo=UTC)


@pytest.mark.parametrize("value", ["2027123123595", "202712312359590", "202712312359590000", "2027123123595900", "20271331235959",
                                   "20270230000000", "2027123123595x", "２0271231235959"])
def test_an_expire_time_that_is_no_date_is_refused(value):
    assert refusal(parsing.expire_time, {"expireTime": value}, "expireTime") == refused(
        "expireTime must be yyyyMMddHHmmss (UTC)")


@pytest.mark.parametrize("value, read", [
    ("true", True), ("false", False), (" TRUE ", True), ("False", False), (True, True), (False, False),
])
def test_enable_is_true_or_false_as_text_or_json(value, read):
    assert parsing.boolean_text(value, "enable") is read


@pytest.mark.parametrize("value", ["yes", "1", 1, 0, None, "", "truex"])
def test_enable_that_is_neither_true_nor_false_is_refused(value):
    assert refusal(parsing.boolean_text, value, "enable") == refused('enable must be "true" or "false"')


@pytest.mark.parametrize("value, read", [
    ([{"orgCode": "1"}], [{"orgCode": "1"}]),
    ('[{"orgCode":"1"}]', [{"orgCode": "1"}]),
    ('[{orgCode:"1", orgName: "财务部"}]', [{"orgCode": "1", "orgName": "财务部"}]),
    ('{"orgCode":"1"}', [{"orgCode": "1"}]),
    ({"orgCode": "1"}, [{"orgCode": "1"}]),
    ("", []), ("  ", []), ([], []),
])
def test_a_list_may_arrive_as_an_array_a_json_string_or_huaweis_lax_form(value, read):
    assert parsing.json_list({"orgInfoList": value}, "orgInfoList") == ("orgInfoList", read)


def test_the_first_list_name_present_is_read():
    body = {"orgInfo": '[{"orgCode":"2"}]', "orgInfoList": None}
    assert parsing.json_list(body, "orgInfoList", "orgInfo") == ("orgInfo", [{"orgCode": "2"}])
    body = {"orgInfo": [{"orgCode": "2"}], "orgInfoList": [{"orgCode": "1"}]}
    assert parsing.json_list(body, "orgInfoList", "orgInfo") == ("orgInfoList", [{"orgCode": "1"}])


@pytest.mark.parametrize("body, message", [
    ({}, "orgInfoList is missing"),
    ({"orgInfoList": None, "orgInfo": None}, "orgInfoList is missing"),
    ({"orgInfo": "[{oops"}, "orgInfo is not a JSON array"),
    ({"orgInfo": "[1, 2]"}, "orgInfo must be a list of objects"),
    ({"orgInfo": 5}, "orgInfo must be a list of objects"),
    ({"orgInfo": [{"a": 1}, "b"]}, "orgInfo must be a list of objects"),
])
def test_a_list_that_is_no_list_of_objects_is_refused(body, message):
    assert refusal(parsing.json_list, body, "orgInfoList", "orgInfo") == refused(message)


# --- domainName --------------------------------------------------------------------------------------


@pytest.mark.parametrize("value, read", [
    ("idp.example.com", "https://idp.example.com"),
    ("  HTTPS://IdP.Example.com/ ", "https://idp.example.com"),
    ("https://idp.example.com:8443/oauth2/", "https://idp.example.com:8443/oauth2"),
    ("https://idp.example.com//", "https://idp.example.com"),
    ("https://idp.example.com/BOX/", "https://idp.example.com/BOX"),
])
def test_a_domain_name_is_normalised_to_an_https_origin_and_path(value, read):
    assert parsing.normalise_domain_name(value, allow_insecure=False) == read


@pytest.mark.parametrize("value, read", [
    ("http://127.0.0.1:5001", "http://127.0.0.1:5001"),
    ("HTTP://LOCALHOST:5001/x/", "http://localhost:5001/x"),
    ("http://[::1]:5001", "http://[::1]:5001"),
    ("http://[::1]", "http://[::1]"),
])
def test_local_development_may_use_plain_http_and_loopback(value, read):
    assert parsing.normalise_domain_name(value, allow_insecure=True) == read


@pytest.mark.parametrize("value, message", [
    ("https://idp.example.com:99999", "domainName is not a valid URL"),
    ("https://[::1", "domainName is not a valid URL"),
    ("ftp://idp.example.com", "domainName must be an https URL or a host name"),
    ("https://", "domainName must be an https URL or a host name"),
    ("https://user:pw@idp.example.com", "domainName must not carry credentials, a query or a fragment"),
    ("https://user@idp.example.com", "domainName must not carry credentials, a query or a fragment"),
    ("https://idp.example.com/?a=1", "domainName must not carry credentials, a query or a fragment"),
    ("https://idp.example.com/#top", "domainName must not carry credentials, a query or a fragment"),
    ("https://idp.example.com/a b", "domainName must not carry credentials, a query or a fragment"),
    ("http://idp.example.com", "domainName must use https"),
    ("https://127.0.0.1", "domainName must be a public host name, not an internal address"),
    ("https://2130706433", "domainName must be a public host name, not an internal address"),
    ("https://[64:ff9b::7f00:1]", "domainName must be a public host name, not an internal address"),
    ("https://localhost", "domainName must be a public host name, not an internal address"),
])
def test_a_domain_name_that_is_not_a_public_https_host_is_refused(value, message):
    assert refusal(parsing.normalise_domain_name, value, allow_insecure=False) == refused(message)


def test_an_allow_listed_network_admits_an_internal_centre():
    assert parsing.normalise_domain_name("https://10.1.2.3", allow_insecure=False,
                                         allowed_networks=["10.0.0.0/8"]) == "https://10.1.2.3"
    assert refusal(parsing.normalise_domain_name, "https://10.1.2.3", allow_insecure=False,
                   allowed_networks=["192.168.0.0/16"])[1] == (
        "domainName must be a public host name, not an internal address")
