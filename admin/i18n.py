"""The console's words, in Simplified Chinese and English, beside the bridge's own (sso.i18n): the
language is chosen the same way, and a key not found here falls back to sso.i18n.MESSAGES."""

from __future__ import annotations

from sso.i18n import MESSAGES as BRIDGE_MESSAGES
from sso.i18n import current_language
from sso.i18n import translate as bridge_translate

MESSAGES: dict[str, tuple[str, str]] = {  # key: (zh, en)
    # Deliberately shadows the bridge's name, so base.html's header and title say where you are.
    "app_name": ("SSO Bridge 运营控制台", "SSO Bridge console"),
    "admin.nav_label": ("控制台导航", "Console navigation"),
    "admin.nav_tenants": ("租户", "Tenants"),
    "admin.nav_sync": ("同步日志", "Sync log"),
    "admin.nav_logins": ("登录记录", "Login audit"),
    "admin.nav_apps": ("OIDC 应用", "OIDC apps"),
    "admin.nav_audit": ("操作审计", "Operator audit"),
    "admin.signed_in_as": ("操作员", "Operator"),
    "admin.sign_out": ("退出", "Sign out"),
    # signing in
    "admin.login_title": ("运营人员登录", "Operator sign-in"),
    "admin.login_intro": ("仅限服务商运营人员使用。", "For the vendor's operators only."),
    "admin.username": ("用户名", "Username"),
    "admin.password": ("密码", "Password"),
    "admin.sign_in": ("登录", "Sign in"),
    "admin.code_title": ("两步验证", "Verification code"),
    "admin.code_intro": ("请输入身份验证器应用中显示的 6 位验证码。", "Enter the 6-digit code your authenticator app shows."),
    "admin.code": ("验证码", "Code"),
    "admin.verify": ("验证", "Verify"),
    "admin.back_to_sign_in": ("返回登录", "Back to sign-in"),
    "admin.bad_credentials": ("用户名或密码不正确。", "Wrong username or password."),
    "admin.bad_code": ("验证码不正确或已使用过。请输入最新的验证码。", "The code is wrong or was used already. Enter the newest code."),
    "admin.locked": ("登录失败次数过多，已暂时锁定。请在 {minutes} 分钟后重试。", "Too many failed sign-ins: locked for now. Try again in {minutes} minutes."),
    "admin.code_expired": ("登录已超时，请重新输入用户名和密码。", "The sign-in took too long. Enter your username and password again."),
    "admin.signed_out": ("您已退出运营控制台。", "You have signed out of the console."),
    # lists
    "admin.search": ("搜索", "Search"),
    "admin.search_hint": ("租户 ID、企业代码或名称", "Tenant ID, company code or name"),
    "admin.filter": ("筛选", "Filter"),
    "admin.all": ("全部", "All"),
    "admin.page_of": ("第 {number} / {pages} 页，共 {total} 条", "Page {number} of {pages}, {total} in all"),
    "admin.previous": ("上一页", "Previous"),
    "admin.next": ("下一页", "Next"),
    "admin.no_rows": ("没有记录。", "Nothing here."),
    "admin.none": ("无", "none"),
    "admin.yes": ("是", "yes"),
    "admin.no": ("否", "no"),
    "admin.time": ("时间 (UTC)", "Time (UTC)"),
    "admin.details": ("详情", "Details"),
    "admin.back": ("返回", "Back"),
    # tenants
    "admin.tenants_title": ("租户", "Tenants"),
    "admin.tenant": ("租户", "Tenant"),
    "admin.tenant_id": ("租户 ID", "Tenant ID"),
    "admin.tenant_code": ("企业代码", "Company code"),
    "admin.tenant_name": ("名称", "Name"),
    "admin.status": ("状态", "Status"),
    "admin.status_active": ("正常", "active"),
    "admin.status_deleted": ("已删除", "deleted"),
    "admin.test_data": ("测试数据", "test data"),
    "admin.auth_centre": ("认证中心", "Authentication centre"),
    "admin.last_sync": ("最近同步", "Last sync"),
    "admin.sign_in_state": ("能否登录", "Sign-in"),
    "admin.sign_in_open": ("可以登录", "open"),
    "admin.instances": ("实例（状态、到期）", "Instances (status, expiry)"),
    "admin.instance_id": ("实例 ID", "Instance ID"),
    "admin.order": ("订单", "Order"),
    "admin.expires": ("到期 (UTC)", "Expires (UTC)"),
    "admin.never": ("不过期", "never"),
    "admin.no_instance_row": ("尚未收到 newInstance", "no newInstance received"),
    "admin.apps": ("应用凭证", "App credentials"),
    "admin.app_id": ("appId", "appId"),
    "admin.client_id": ("clientId", "Client ID"),
    "admin.secret": ("密钥", "Secret"),
    "admin.secret_stored": ("已保存", "stored"),
    "admin.no_secret": ("未保存", "none"),
    "admin.users": ("用户", "Users"),
    "admin.user_name": ("账号", "Account"),
    "admin.name": ("姓名", "Name"),
    "admin.role": ("角色", "Role"),
    "admin.department": ("部门", "Department"),
    "admin.authorised": ("已授权", "Authorised"),
    "admin.enabled": ("已启用", "Enabled"),
    "admin.may_sign_in": ("可登录", "May sign in"),
    "admin.departments": ("部门", "Departments"),
    "admin.org_code": ("部门代码", "Code"),
    "admin.org_name": ("部门名称", "Name"),
    "admin.parent": ("上级部门", "Parent"),
    "admin.active_sessions": ("在线会话", "Active sessions"),
    "admin.signed_in_at": ("登录时间 (UTC)", "Signed in (UTC)"),
    "admin.last_seen": ("最近活动 (UTC)", "Last seen (UTC)"),
    "admin.end_user_sessions": ("结束该用户的会话", "End this user's sessions"),
    "admin.end_tenant_sessions": ("结束该租户的所有会话", "End all sessions of this tenant"),
    "admin.end_tenant_note": ("该租户的所有用户会立即退出登录，已接入的应用会收到退出通知。", "Every user of this tenant is signed out at once, and the connected apps are told."),
    "admin.ended_tenant": ("已结束该租户的 {count} 个会话。", "Ended {count} session(s) of this tenant."),
    "admin.ended_user": ("已结束用户 {user} 的 {count} 个会话。", "Ended {count} session(s) of {user}."),
    # sync log
    "admin.sync_title": ("同步日志", "Sync log"),
    "admin.sync_intro": ("KooGallery 的每一次同步调用，失败的排在最前，其余按时间倒序。", "Every sync call from KooGallery: failures first, then the newest."),
    "admin.result_code": ("结果码", "Result code"),
    "admin.failed_only": ("仅失败", "Failures only"),
    "admin.interface": ("接口", "Interface"),
    "admin.result_msg": ("结果说明", "Result message"),
    "admin.duration": ("耗时 (ms)", "Duration (ms)"),
    "admin.sync_call_title": ("同步调用 #{id}", "Sync call #{id}"),
    "admin.body": ("请求体（已脱敏）", "Body (redacted)"),
    "admin.no_body": ("未保存请求体。", "No body stored."),
    "admin.remote_addr": ("来源地址", "From"),
    "admin.signature_form": ("验签方式", "Signature"),
    # login audit
    "admin.logins_title": ("登录记录", "Login audit"),
    "admin.logins_intro": ("最终用户通过桥接服务登录的每一次结果。", "Every outcome of an end user's sign-in through the bridge."),
    "admin.user": ("用户", "User"),
    "admin.outcome": ("结果", "Outcome"),
    "admin.reason": ("原因", "Reason"),
    "admin.detail": ("说明", "Detail"),
    "admin.outcome.success": ("成功", "success"),
    "admin.outcome.refused": ("拒绝", "refused"),
    "admin.outcome.logout": ("退出", "logout"),
    "admin.outcome.ended": ("会话结束", "ended"),
    # OIDC apps
    "admin.apps_title": ("OIDC 应用", "OIDC apps"),
    "admin.apps_intro": ("通过桥接服务登录用户的 SaaS 应用（flask apps register 注册）。", "The SaaS apps that sign users in through the bridge (registered with flask apps register)."),
    "admin.app_name": ("应用名称", "App name"),
    "admin.client_type": ("类型", "Type"),
    "admin.public_client": ("公开客户端（PKCE）", "public (PKCE)"),
    "admin.confidential_client": ("机密客户端（密钥仅存哈希）", "confidential (secret stored hashed)"),
    "admin.redirect_uris": ("回调地址", "Redirect URIs"),
    "admin.post_logout_uris": ("退出后返回地址", "Post-logout redirect URIs"),
    "admin.initiate_login_uri": ("发起登录地址", "Initiate-login URI"),
    "admin.backchannel_uri": ("后台通道退出地址", "Back-channel logout URI"),
    "admin.scopes": ("权限范围", "Scopes"),
    "admin.grant_types": ("授权类型", "Grant types"),
    "admin.auth_method": ("令牌端点认证方式", "Token endpoint authentication"),
    "admin.created": ("创建时间 (UTC)", "Created (UTC)"),
    "admin.logouts_pending": ("待投递的退出通知", "Logout notices waiting"),
    "admin.logouts_given_up": ("已放弃投递的退出通知", "Logout notices given up"),
    # operator audit
    "admin.audit_title": ("操作审计", "Operator audit"),
    "admin.audit_intro": ("运营人员的登录与操作，包括在服务器上执行的 flask admin 命令。", "Operators' sign-ins and actions, including flask admin commands run on a server."),
    "admin.operator": ("操作员", "Operator"),
    "admin.action": ("操作", "Action"),
    "admin.target": ("对象", "Target"),
    "admin.action.sign_in": ("登录", "signed in"),
    "admin.action.sign_in_refused": ("登录被拒绝", "sign-in refused"),
    "admin.action.sign_out": ("退出", "signed out"),
    "admin.action.end_tenant_sessions": ("结束租户的会话", "ended a tenant's sessions"),
    "admin.action.end_user_sessions": ("结束用户的会话", "ended a user's sessions"),
    "admin.action.operator_created": ("创建操作员", "operator created"),
    "admin.action.password_reset": ("重置密码", "password reset"),
    "admin.action.operator_disabled": ("停用操作员", "operator disabled"),
    "admin.action.operator_enabled": ("启用操作员", "operator enabled"),
    # refusals
    "admin.back_to_console": ("返回控制台", "Back to the console"),
    "admin.error.unknown_tenant.title": ("找不到该租户", "No such tenant"),
    "admin.error.unknown_tenant.text": ("没有这个租户 ID 的记录。请从租户列表中选择。", "No tenant with this ID has been synced. Pick one from the list."),
    "admin.error.unknown_sync_call.title": ("找不到该同步调用", "No such sync call"),
    "admin.error.unknown_sync_call.text": ("同步日志中没有这条记录。", "The sync log has no call with this number."),
    "admin.error.unknown_app.title": ("找不到该应用", "No such app"),
    "admin.error.unknown_app.text": ("没有使用这个 client ID 的 OIDC 应用。", "No OIDC app has this client ID."),
    "admin.error.bad_page.title": ("页码无效", "Invalid page number"),
    "admin.error.bad_page.text": ("页码必须是从 1 开始的整数。", "A page number is a whole number from 1 up."),
    "admin.error.page_out_of_range.title": ("没有这一页", "No such page"),
    "admin.error.page_out_of_range.text": ("列表没有这么多页。请从第一页开始。", "The list does not have that many pages. Start from the first."),
    "admin.error.bad_filter.title": ("筛选条件无效", "Invalid filter"),
    "admin.error.bad_filter.text": ("筛选条件过长或取值无效。请修改后重试。", "A filter value is too long or not one of the choices. Change it and try again."),
    "admin.error.csrf.title": ("页面已过期", "This page has expired"),
    "admin.error.csrf.text": ("为安全起见，表单已失效。请刷新页面后重试。", "For safety the form expired. Reload the page and try again."),
    "admin.error.unavailable.title": ("服务暂不可用", "Service unavailable"),
    "admin.error.unavailable.text": ("数据库暂时无法访问，请稍后重试。", "The database cannot be reached right now. Please try again shortly."),
}


def translate(key: str) -> str:
    pair = MESSAGES.get(key)
    if pair is None:
        return bridge_translate(key)
    return pair[1] if current_language() == "en" else pair[0]


def label(prefix: str, value: str | None) -> str:
    """A translated name for a stored code (an action, an outcome), or the code itself."""
    key = f"{prefix}.{value}"
    return translate(key) if key in MESSAGES else (value or "")


def known_text(key: str) -> str:
    """The translation of `key` if either dictionary has it, else nothing (for optional hints)."""
    return translate(key) if key in MESSAGES or key in BRIDGE_MESSAGES else ""
