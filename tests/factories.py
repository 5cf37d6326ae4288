"""Bodies as KooGallery sends them (spec §5, §7), with overridable fields."""

from __future__ import annotations

TENANT = "68cbc86abc2018ab880d92f36422fa0e"
APP = "2b1c4f0e9a8d4c6e"


def tenant_sync(**over) -> dict:
    body = {"instanceId": "inst-1", "orderId": "CS1906666666ABCDE", "tenantId": TENANT, "tenantCode": "huawei",
            "name": "华为测试企业", "domainName": "https://example.tenantaccount.com", "flag": 1, "testFlag": 0,
            "timeStamp": "20220413093539534"}
    return {**body, **over}


def application_sync(client_secret: str, **over) -> dict:
    body = {"instanceId": "inst-1", "tenantId": TENANT, "appId": APP, "clientId": "NzZeWuiJa91dPSRdZQChMazIh13AW",
            "clientSecret": client_secret, "flag": 1, "testFlag": 0, "timeStamp": "20220413093539534"}
    return {**body, **over}


def user(user_name: str, **over) -> dict:
    body = {"userName": user_name, "name": f"User {user_name}", "orgCode": "D1", "role": "user", "enable": "true"}
    return {**body, **over}


def auth_sync(users: list[dict], **over) -> dict:
    body = {"instanceId": "inst-1", "tenantId": TENANT, "appId": APP, "userList": users,
            "currentSyncTime": "20220420114117642", "flag": 1, "testFlag": 0, "timeStamp": "20220420114117642"}
    return {**body, **over}


def single_org_sync(code: str, **over) -> dict:
    body = {"instanceId": "inst-1", "tenantId": TENANT, "orgCode": code, "orgName": f"Dept {code}", "parentCode": "",
            "flag": 1, "testFlag": 0, "timeStamp": "20220413093539534"}
    return {**body, **over}


def all_org_sync(orgs, **over) -> dict:
    body = {"instanceId": "inst-1", "tenantId": TENANT, "orgInfoList": orgs, "flag": 1, "testFlag": 0,
            "timeStamp": "20220413093539534"}
    return {**body, **over}


def new_instance(**over) -> dict:
    body = {"activity": "newInstance", "businessId": "87b94795-0603-4e24-8ae5-69420d60e3c8",
            "orderId": "CS2211181819B4LVS", "orderLineId": "CS2211181819B4LVS-000001", "testFlag": "1"}
    return {**body, **over}
