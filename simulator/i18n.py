"""Page text in Simplified Chinese (the default, as KooGallery's own pages) and English.
A plain table rather than gettext catalogues: two languages, a few dozen strings, no build step."""

from __future__ import annotations

LANGUAGES = ("zh", "en")

MESSAGES: dict[str, tuple[str, str]] = {  # key: (zh, en)
    "site.name": ("KooGallery 模拟器", "KooGallery Simulator"),
    "site.footer": ("本地模拟器：模拟华为云 KooGallery 与各租户认证中心，仅供开发与演示，勿用于生产。",
                    "A local simulator of Huawei Cloud KooGallery and each tenant's authentication centre, "
                    "for development and demos only."),
    "nav.skip": ("跳到主要内容", "Skip to main content"),
    "nav.label": ("主导航", "Main navigation"),
    "nav.workbench": ("企业工作台", "Enterprise workbench"),
    "nav.portal": ("统一登录门户", "Unified login portal"),
    "nav.home": ("模拟器首页", "Simulator home"),

    "form.tenant": ("企业（租户）", "Enterprise (tenant)"),
    "form.username": ("用户名", "User name"),
    "form.password": ("密码", "Password"),
    "form.sign_in": ("登录", "Sign in"),
    "signin.failed": ("用户名或密码错误。", "Wrong user name or password."),
    "signin.unknown_tenant": ("请选择一个企业。", "Choose an enterprise."),

    "role.admin": ("企业管理员", "Enterprise admin"),
    "role.user": ("普通用户", "Ordinary user"),

    "demo.title": ("演示账号", "Demo accounts"),
    "demo.tenant": ("企业", "Enterprise"),
    "demo.user_name": ("用户名", "User name"),
    "demo.name": ("姓名", "Name"),
    "demo.password": ("密码", "Password"),
    "demo.role": ("角色", "Role"),
    "demo.shows": ("演示内容", "What it shows"),
    "demo.idp_hint": ("本企业的演示账号。这是演示环境，所以密码公开显示。",
                      "This enterprise's demo accounts. It is a demo, so the passwords are shown."),
    "demo.portal_hint": ("门户不替应用做授权判断：已禁用或未授权的用户也能登录并被带回应用，由应用拒绝他们。",
                         "The portal does not decide for the app: disabled and unauthorised users also sign in "
                         "and are sent to the app, which must refuse them."),
    "demo.workbench_hint": ("工作台只向已授权且已启用的用户显示应用。用 `flask --app simulator sim revoke/grant/"
                            "disable/enable` 可随时改变授权，状态立即生效。",
                            "The workbench shows the app only to authorised, enabled users. Change grants any time "
                            "with `flask --app simulator sim revoke/grant/disable/enable`; it takes effect at once."),
    "demo.admin": ("企业管理员：已授权，应用中应获得管理员角色", "Enterprise admin: authorised; gets the admin role "
                   "in the app"),
    "demo.ordinary": ("普通用户：已授权，可以登录应用", "Ordinary user: authorised, may sign in to the app"),
    "demo.disabled": ("已禁用（authSync enable=\"false\"）：应用应拒绝登录",
                      "Disabled (authSync enable=\"false\"): the app must refuse the sign-in"),
    "demo.not_authorised": ("未授权本应用（不在 authSync 中）：应用应拒绝登录",
                            "Not authorised for the app (not in authSync): the app must refuse the sign-in"),
    "demo.deleted": ("已删除：无法登录", "Deleted: cannot sign in"),

    "idp.site": ("{tenant} · 统一身份认证", "{tenant} · Identity"),
    "idp.title": ("登录", "Sign in"),
    "idp.heading": ("登录 {tenant}", "Sign in to {tenant}"),
    "idp.app_asks": ("应用「{app}」请求读取你的账号信息。", "The app “{app}” asks to read your account details."),
    "idp.scope": ("权限范围", "scope"),
    "idp.signed_in_title": ("已登录", "Signed in"),
    "idp.signed_in_as": ("你已以 {name}（{user}）身份登录 {tenant} 的认证中心。",
                         "You are signed in to {tenant}'s authentication centre as {name} ({user})."),
    "idp.sign_out": ("退出登录", "Sign out"),

    "portal.title": ("统一登录", "Unified login"),
    "portal.heading": ("华为云 KooGallery 统一登录", "Huawei Cloud KooGallery unified login"),
    "portal.app": ("登录后将进入应用「{app}」。", "After signing in you go to the app “{app}”."),
    "portal.signed_in_as": ("你已以 {name}（{user}，{tenant}）身份登录。",
                            "You are signed in as {name} ({user}, {tenant})."),
    "portal.continue": ("以 {name} 身份继续", "Continue as {name}"),
    "portal.other_account": ("或使用其他账号登录", "Or sign in with another account"),
    "portal.fragment_hint": ("正在打开统一登录页……", "Opening the unified login page…"),
    "portal.fragment_go": ("打开统一登录页", "Open the unified login page"),

    "workbench.title": ("企业工作台", "Enterprise workbench"),
    "workbench.hello": ("你好，{name}", "Hello, {name}"),
    "workbench.sign_out": ("退出", "Sign out"),
    "workbench.my_apps": ("我的应用", "My apps"),
    "workbench.open": ("打开应用", "Open app"),
    "workbench.no_apps": ("暂无已授权的应用。", "No apps granted to you."),
    "workbench.reason.not_authorised": ("企业管理员尚未把应用授权给你。", "Your enterprise admin has not granted "
                                        "you the app."),
    "workbench.reason.disabled": ("你的账号已被禁用。", "Your account is disabled."),
    "workbench.reason.unbound": ("你的企业已解除对应用的绑定。", "Your enterprise has unbound the app."),
    "workbench.sign_in_heading": ("登录企业工作台", "Sign in to the enterprise workbench"),
    "workbench.sign_in_intro": ("使用企业账号登录，查看已授权给你的应用。",
                                "Sign in with your enterprise account to see the apps granted to you."),

    "landing.title": ("首页", "Home"),
    "landing.heading": ("KooGallery 联营 SaaS 模拟器", "KooGallery joint-operation SaaS simulator"),
    "landing.intro": ("本地替身：华为云 KooGallery（同步接口、统一登录门户、企业工作台）以及每个租户的"
                      "认证中心（OAuth2 授权、令牌、用户信息、登出），线上格式与真实接口一致。",
                      "A local stand-in for Huawei Cloud KooGallery (sync calls, unified login portal, "
                      "enterprise workbench) and for each tenant's authentication centre (OAuth2 authorize, "
                      "token, userinfo, logout), speaking the real wire formats."),
    "landing.workbench": ("以企业用户身份登录，打开已授权的应用（应用收到 ?code=…&tenant=…）。",
                          "Sign in as an enterprise user and open a granted app (the app receives "
                          "?code=…&tenant=…)."),
    "landing.open_workbench": ("进入企业工作台", "Open the workbench"),
    "landing.portal": ("应用把用户重定向到这里（ind=UNOP&appId=…）；登录后带着 code 和 tenant 回到应用。",
                       "Apps send users here (ind=UNOP&appId=…); after signing in they return with code and "
                       "tenant."),
    "landing.open_portal": ("打开统一登录门户", "Open the portal"),
    "landing.centres": ("租户认证中心", "Tenant authentication centres"),
    "landing.centres_intro": ("domainName 即 tenantSync 同步给应用的认证中心地址，其下为 /api/v1/oauth2/authorize、"
                              "/token、/userinfo 与 /api/v1/logout。",
                              "domainName is the authentication centre address tenantSync gives the app; "
                              "/api/v1/oauth2/authorize, /token, /userinfo and /api/v1/logout live under it."),
    "landing.state": ("状态", "State"),
    "landing.bound": ("已绑定应用", "App bound"),
    "landing.unbound": ("已解绑", "Unbound"),
    "landing.fault": ("故障：{kind}", "fault: {kind}"),
    "landing.cli": ("命令行", "Command line"),
    "landing.cli_intro": ("同步、撤销授权、冻结实例、注入故障：", "Sync, revoke, freeze, inject faults:"),

    "error.status": ("HTTP 状态码 {status}", "HTTP status {status}"),
    "error.home": ("返回模拟器首页", "Back to the simulator home"),
    "error.bad_request": ("请求无效", "Bad request"),
    "error.not_found": ("页面不存在", "Page not found"),
    "error.not_found_detail": ("该地址在模拟器中不存在。", "There is no such address in the simulator."),
    "error.method": ("不支持的请求方法", "Method not allowed"),
    "error.too_large": ("请求过大", "Request too large"),
    "error.server": ("出错了", "Something went wrong"),
    "error.server_detail": ("模拟器无法完成此请求，详情见服务器日志。",
                            "The simulator could not complete this request; the server log has the details."),
    "error.csrf": ("表单已过期或来源不明，请返回后重试。", "The form expired or did not come from this site. "
                   "Go back and try again."),
    "error.unknown_tenant": ("该企业的认证中心不存在。", "There is no authentication centre for this enterprise."),
    "error.authorize_refused": ("无法处理授权请求", "This authorization request cannot be handled"),
    "error.missing_client_id": ("请求缺少 client_id。", "The request has no client_id."),
    "error.unknown_client": ("client_id「{value}」不是本企业认证中心登记的应用。",
                             "client_id “{value}” is not an app registered with this enterprise's "
                             "authentication centre."),
    "error.missing_redirect_uri": ("请求缺少 redirect_uri。", "The request has no redirect_uri."),
    "error.redirect_uri_mismatch": ("redirect_uri「{value}」与应用登记的登录地址不一致，已拒绝跳转。",
                                    "redirect_uri “{value}” is not the app's registered login address; "
                                    "not redirecting."),
    "error.logout_target": ("无法跳转", "Cannot redirect"),
    "error.logout_target_detail": ("你已退出登录，但 redirect_url「{value}」不是已登记的应用地址。",
                                   "You are signed out, but redirect_url “{value}” is not a registered app "
                                   "address."),
    "error.portal_refused": ("无法打开统一登录页", "The unified login page cannot be opened"),
    "error.portal_ind": ("参数 ind 必须为 UNOP（收到「{value}」）。", "Parameter ind must be UNOP (got “{value}”)."),
    "error.portal_app": ("appId「{value}」不是 KooGallery 登记的应用凭证。",
                         "appId “{value}” is not an application credential registered with KooGallery."),
    "error.unknown_app": ("应用不存在或未授权给你", "No such app, or not granted to you"),
    "error.unknown_app_detail": ("请回到工作台，从「我的应用」中打开。", "Go back to the workbench and open it from "
                                 "“My apps”."),
}


def translate(lang: str, key: str, **values) -> str:
    pair = MESSAGES.get(key)
    if pair is None:
        return key
    text = pair[1] if lang == "en" else pair[0]
    return text.format(**values) if values else text
