"""The words people see, in Simplified Chinese and English. Two languages and a few dozen
strings do not need a gettext toolchain; one dict keeps each pair side by side."""

from __future__ import annotations

from flask import current_app, request, session

MESSAGES: dict[str, tuple[str, str]] = {  # key: (zh, en)
    "app_name": ("企业账号登录", "Enterprise sign-in"),
    "lang_switch": ("English", "中文"),
    "request_id": ("请求编号", "Request ID"),
    "login_title": ("登录", "Sign in"),
    "login_intro": ("使用您企业在华为云云商店开通的账号登录。", "Sign in with the account your company set up in Huawei Cloud KooGallery."),
    "tenant_label": ("企业代码", "Company code"),
    "tenant_hint": ("企业管理员可在企业工作台查看企业代码。", "Your company's administrator can find the code in the enterprise workbench."),
    "continue": ("继续", "Continue"),
    "or": ("或", "or"),
    "portal_button": ("使用华为云账号登录", "Sign in with Huawei Cloud"),
    "home_title": ("已登录", "Signed in"),
    "home_intro": ("您已通过企业账号登录。", "You are signed in with your enterprise account."),
    "field_name": ("姓名", "Name"),
    "field_user": ("账号", "Account"),
    "field_tenant": ("企业", "Company"),
    "field_role": ("角色", "Role"),
    "field_org": ("部门", "Department"),
    "role_admin": ("企业管理员", "Company administrator"),
    "role_user": ("普通用户", "User"),
    "sign_out": ("退出登录", "Sign out"),
    "logout_title": ("退出登录", "Sign out"),
    "logout_confirm": ("确定要退出登录吗？您也将退出企业认证中心。", "Sign out? You will also be signed out of your company's authentication centre."),
    "cancel": ("取消", "Cancel"),
    "signed_out_title": ("已退出", "Signed out"),
    "signed_out_intro": ("您已安全退出。", "You have been signed out."),
    "sign_in_again": ("重新登录", "Sign in again"),
    "try_again": ("重试", "Try again"),
    "back_to_login": ("返回登录页", "Back to sign-in"),
    "not_signed_in": ("尚未登录", "Not signed in"),
    # Login refusals: (title, explanation) pairs under reason codes.
    "unknown_tenant.title": ("找不到该企业", "Company not found"),
    "unknown_tenant.text": ("该企业尚未开通本应用，或企业代码有误。请检查企业代码，或联系企业管理员。", "This company has not been set up for this app, or the code is wrong. Check the code or ask your administrator."),
    "tenant_deleted.title": ("企业已停用本应用", "The app is no longer enabled for this company"),
    "tenant_deleted.text": ("您的企业已解除本应用的绑定。如有疑问，请联系企业管理员。", "Your company has removed this app. Ask your administrator if this is unexpected."),
    "instance_suspended.title": ("企业的订购已暂停", "The company's subscription is suspended"),
    "instance_suspended.text": ("该企业的订购已冻结、到期或释放，暂时无法登录。请联系企业管理员续费或恢复。", "The subscription is frozen, expired or released, so nobody can sign in. Ask your administrator to renew it."),
    "app_missing.title": ("应用尚未完成配置", "The app is not set up for this company yet"),
    "app_missing.text": ("尚未收到该企业的应用凭证同步。请稍后再试，或联系服务商。", "The app's credentials for this company have not arrived from KooGallery yet. Try later or contact the vendor."),
    "not_authorised.title": ("您没有使用本应用的权限", "You are not authorised to use this app"),
    "not_authorised.text": ("企业管理员尚未为您的账号授权本应用。请联系企业管理员授权。", "Your company's administrator has not granted you this app. Ask them to grant it."),
    "user_disabled.title": ("账号已被停用", "Your account is disabled"),
    "user_disabled.text": ("您的账号在本应用中已被停用。请联系企业管理员。", "Your account is disabled for this app. Ask your company's administrator."),
    "instance_unknown.title": ("企业的订购尚未开通", "The company's subscription is not set up yet"),
    "instance_unknown.text": ("该企业绑定的订购在本服务中还没有记录，暂时无法登录。请稍后再试，或联系服务商。", "The subscription this company is bound to is not known to this service yet, so nobody can sign in. Try again later or contact the vendor."),
    "seats_exceeded.title": ("账号数已满", "All seats are taken"),
    "seats_exceeded.text": ("该企业购买的账号数已用完，您暂时无法登录。请联系企业管理员增加账号数或调整授权。", "Your company has used every seat it bought, so you cannot sign in. Ask your administrator to buy more seats or change who is authorised."),
    "tenant_missing.title": ("认证中心未说明企业", "The authentication centre did not name your company"),
    "tenant_missing.text": ("认证中心返回的用户信息中没有企业标识，登录已中止。请联系服务商。", "The authentication centre's answer did not say which company you belong to, so the sign-in was stopped. Please contact the vendor."),
    "tenant_mismatch.title": ("企业信息不一致", "Company mismatch"),
    "tenant_mismatch.text": ("认证中心返回的企业与登录请求不一致，登录已中止。请重新登录。", "The authentication centre answered for a different company than the sign-in was for, so it was stopped. Please sign in again."),
    "state_invalid.title": ("登录请求无效", "Invalid sign-in request"),
    "state_invalid.text": ("该登录请求不是由本站发起的，已被拒绝。请重新登录。", "This sign-in was not started here, so it was refused. Please sign in again."),
    "state_expired.title": ("登录已超时", "Sign-in timed out"),
    "state_expired.text": ("登录请求已过期。请重新登录。", "The sign-in took too long and expired. Please sign in again."),
    "state_replayed.title": ("登录链接已使用", "Sign-in link already used"),
    "state_replayed.text": ("该登录链接只能使用一次。请重新登录。", "This sign-in link can only be used once. Please sign in again."),
    "state_mismatch.title": ("登录请求与浏览器不匹配", "Sign-in started in another browser"),
    "state_mismatch.text": ("该登录请求由其他浏览器发起，为保护您的账号已被拒绝。请在当前浏览器重新登录。", "This sign-in was started in a different browser and was refused to protect your account. Please sign in again here."),
    "code_missing.title": ("缺少授权码", "Missing authorisation code"),
    "code_missing.text": ("认证中心没有返回授权码。请重新登录。", "The authentication centre did not return a code. Please sign in again."),
    "code_invalid.title": ("授权码已失效", "The sign-in code has expired"),
    "code_invalid.text": ("授权码已过期或已被使用。请重新登录。", "The code expired or was already used. Please sign in again."),
    "idp_denied.title": ("认证中心拒绝了登录", "The authentication centre refused the sign-in"),
    "idp_denied.text": ("企业认证中心没有完成授权。请重新登录。", "Your company's authentication centre did not grant the sign-in. Please try again."),
    "idp_unreachable.title": ("无法连接企业认证中心", "Cannot reach your company's authentication centre"),
    "idp_unreachable.text": ("企业认证中心暂时无法访问。请稍后重试。", "The authentication centre cannot be reached right now. Please try again shortly."),
    "idp_timeout.title": ("企业认证中心响应超时", "Your company's authentication centre is not answering"),
    "idp_timeout.text": ("企业认证中心响应太慢。请稍后重试。", "The authentication centre took too long to answer. Please try again shortly."),
    "idp_error.title": ("企业认证中心出错", "Your company's authentication centre had a problem"),
    "idp_error.text": ("企业认证中心返回了错误。请稍后重试。", "The authentication centre answered with an error. Please try again shortly."),
    "idp_garbage.title": ("企业认证中心返回了无法识别的内容", "Unexpected answer from the authentication centre"),
    "idp_garbage.text": ("企业认证中心的响应无法识别。请稍后重试；如持续出现，请联系服务商。", "The authentication centre's answer could not be understood. Try again; if it persists, contact the vendor."),
    "idp_rejected_client.title": ("应用凭证无效", "The app's credentials were refused"),
    "idp_rejected_client.text": ("企业认证中心拒绝了本应用的凭证。请联系服务商。", "The authentication centre refused this app's credentials. Please contact the vendor."),
    "idp_no_state.title": ("无法完成安全登录", "Cannot complete a secure sign-in"),
    "idp_no_state.text": ("企业认证中心没有返回登录状态参数。请联系服务商。", "The authentication centre did not return the sign-in state. Please contact the vendor."),
    "idp_forbidden_host.title": ("企业认证中心地址无效", "The authentication centre's address is not allowed"),
    "idp_forbidden_host.text": ("企业认证中心的地址指向内部网络，已拒绝连接。请联系服务商。", "The authentication centre's address points into a private network, so the bridge refused to call it. Please contact the vendor."),
    "idp_busy.title": ("企业认证中心繁忙", "Your company's authentication centre is busy"),
    "idp_busy.text": ("正在处理发往企业认证中心的其他登录请求。请稍候片刻再试。", "Other sign-ins to your company's authentication centre are still in progress. Please try again in a few seconds."),
    "idp_circuit_open.title": ("企业认证中心暂时不可用", "Your company's authentication centre is unavailable"),
    "idp_circuit_open.text": ("企业认证中心最近多次无响应或出错，已暂停连接。请稍后重试。", "The authentication centre failed several times in a row, so the bridge has paused calling it. Please try again shortly."),
    "bad_request.title": ("请求无效", "Invalid request"),
    "bad_request.text": ("请求不完整或已失效。请返回重试。", "The request was incomplete or is no longer valid. Please go back and try again."),
    "csrf.title": ("页面已过期", "This page has expired"),
    "csrf.text": ("为保护您的账号，表单已失效。请刷新页面后重试。", "To protect your account the form expired. Reload the page and try again."),
    "not_found.title": ("页面不存在", "Page not found"),
    "not_found.text": ("您访问的页面不存在。", "The page you asked for does not exist."),
    "server_error.title": ("出错了", "Something went wrong"),
    "server_error.text": ("服务暂时无法完成该请求。请稍后重试。", "The bridge could not complete this request. Please try again shortly."),
    "rate_limited.title": ("请求过于频繁", "Too many requests"),
    "rate_limited.text": ("来自您网络的登录请求过多，已暂时限制。请稍等片刻再试。", "Too many sign-in requests came from your network, so they are paused for a moment. Please wait a little and try again."),
    "unavailable.title": ("服务暂不可用", "Service unavailable"),
    "unavailable.text": ("服务暂时不可用，请稍后重试。", "The service is temporarily unavailable. Please try again shortly."),
}


def current_language() -> str:
    languages = current_app.config["LANGUAGES"]
    chosen = request.args.get("lang")
    if chosen in languages:
        session["lang"] = chosen
        return chosen
    if session.get("lang") in languages:
        return session["lang"]
    return request.accept_languages.best_match(languages, default=languages[0]) or languages[0]


def translate(key: str) -> str:
    pair = MESSAGES.get(key)
    if pair is None:
        return key
    return pair[1] if current_language() == "en" else pair[0]


def init_app(app) -> None:
    app.jinja_env.globals.update(_=translate, current_language=current_language)
