"""`flask --app simulator sim ...`: play KooGallery and the buyers' admins from a shell. State
changes reach the running simulator at once (shared SQLite file); sync calls go to the bridge."""

from __future__ import annotations

import functools
import unicodedata
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from simulator.certification import resend_after_lost_answer, run_probe, saved_debug_cases
from simulator.directory import Member
from simulator.driver import SUCCESS, KooGalleryDriver, SyncCallError
from simulator.faults import DESCRIPTIONS, FaultError, set_fault
from simulator.i18n import translate
from simulator.marketplace import REFRESH_SCENES, Marketplace
from simulator.services import services
from simulator.signing import load_public_key
from simulator.state import FAULT_KINDS


def bridge_public_key(config) -> str | None:
    """SIM_BRIDGE_PUBLIC_KEY (one-line base64 SPKI, as `flask keys show-public` prints it), or the
    file SIM_BRIDGE_PUBLIC_KEY_FILE holding that or a PEM public key."""
    text = config.get("BRIDGE_PUBLIC_KEY")
    if not text and config.get("BRIDGE_PUBLIC_KEY_FILE"):
        path = Path(config["BRIDGE_PUBLIC_KEY_FILE"])
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise click.ClickException(f"SIM_BRIDGE_PUBLIC_KEY_FILE={path}: {exc.strerror}") from None
    if not text:
        return None
    try:
        load_public_key(text)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    return text


def make_driver(bridge_url: str | None = None) -> KooGalleryDriver:
    cfg = current_app.config
    missing = [f"SIM_{n}" for n in ("KIT_ACCESS_KEY", "BASIC_ACCESS_KEY") if not cfg.get(n)]
    if missing:
        raise click.ClickException(
            f"{' and '.join(missing)} must be set to the bridge's access keys (KIT_ACCESS_KEY and BASIC_ACCESS_KEY "
            "in the bridge's instance/config.py)")
    return KooGalleryDriver(bridge_url or cfg["BRIDGE_URL"], kit_access_key=str(cfg["KIT_ACCESS_KEY"]),
                            basic_access_key=str(cfg["BASIC_ACCESS_KEY"]), produce_path=cfg["PRODUCE_PATH"],
                            app_id=services().directory.app_id, bridge_public_key=bridge_public_key(cfg),
                            sync_clock=services().store.next_sync_time, timeout=float(cfg["SYNC_TIMEOUT_SECONDS"]))


def make_marketplace(bridge_url: str | None = None) -> Marketplace:
    s = services()
    return Marketplace(s.directory, s.store, make_driver(bridge_url), report=click.echo)


def sends_to_bridge(command):
    """--bridge URL, and a failed call turned into a clear message and exit status 1."""

    @click.option("--bridge", "bridge_url", metavar="URL", help="The bridge's base URL (default SIM_BRIDGE_URL).")
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except SyncCallError as exc:
            raise click.ClickException(f"the bridge did not accept {exc}. The simulator has recorded the change; "
                                       "run the command again once the bridge answers.") from None
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


def find_member(user_name: str, tenant_code: str | None) -> Member:
    try:
        return services().directory.find(user_name, tenant_code)
    except LookupError as exc:
        raise click.ClickException(str(exc).strip("'\"")) from None


def find_tenant(code: str):
    tenant = services().directory.tenant(code)
    if tenant is None:
        codes = ", ".join(t.tenant_code for t in services().directory.tenants)
        raise click.ClickException(f"no tenant with code {code!r} (tenants: {codes})")
    return tenant


def _width(text: str) -> int:
    """Terminal columns: CJK characters take two (张三 is as wide as "four")."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _table(rows: list[tuple], headers: tuple[str, ...]) -> None:
    cells = [tuple("" if v is None else str(v) for v in row) for row in rows]
    widths = [max([_width(h), *(_width(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    for row in (headers, *cells):
        click.echo("  ".join(v + " " * (w - _width(v)) for v, w in zip(row, widths, strict=True)).rstrip())


@click.group("sim", help="KooGallery and the tenants' authentication centres, simulated.")
def sim_cli():
    pass


@sim_cli.command("sync")
@sends_to_bridge
@with_appcontext
def sync(bridge_url):
    """Bind every tenant (tenantSync, applicationSync, allOrgSync, authSync), then place each
    tenant's order (newInstance) and link it (tenantSync with the instanceId)."""
    make_marketplace(bridge_url).sync_everything()


def _user_command(name: str, help_text: str, action):
    @sim_cli.command(name, help=help_text)
    @click.argument("user")
    @click.option("--tenant", "tenant_code", metavar="CODE", help="The tenant, when USER exists in several.")
    @sends_to_bridge
    @with_appcontext
    def command(user, tenant_code, bridge_url):
        member = find_member(user, tenant_code)
        action(make_marketplace(bridge_url), member)

    return command


_user_command("revoke", "Cancel the user's authorisation for the app (authSync flag 3).",
              lambda m, member: m.revoke(member))
_user_command("grant", "Authorise the user for the app (authSync flag 1).", lambda m, member: m.grant(member))
_user_command("disable", 'Disable the user (authSync flag 2, enable "false").',
              lambda m, member: m.set_enabled(member, False))
_user_command("enable", 'Enable the user (authSync flag 2, enable "true").',
              lambda m, member: m.set_enabled(member, True))
_user_command("delete-user", "Delete the user (authSync flag 0); they can no longer sign in anywhere.",
              lambda m, member: m.delete_user(member))


def _instance_command(name: str, help_text: str, action):
    @sim_cli.command(name, help=help_text + " INSTANCE is an instanceId or a tenant code (its order).")
    @click.argument("instance")
    @sends_to_bridge
    @with_appcontext
    def command(instance, bridge_url):
        action(make_marketplace(bridge_url), instance)

    return command


_instance_command("freeze", "Freeze the order (updateInstanceStatus FREEZE).", lambda m, i: m.set_frozen(i, True))
_instance_command("unfreeze", "Unfreeze the order (updateInstanceStatus UNFREEZE).",
                  lambda m, i: m.set_frozen(i, False))
_instance_command("release", "Release the order (releaseInstance).", lambda m, i: m.release(i))


@sim_cli.command("renew")
@click.argument("instance")
@click.option("--expire", required=True, metavar="yyyyMMddHHmmss", help="New expiry time, UTC.")
@sends_to_bridge
@with_appcontext
def renew(instance, expire, bridge_url):
    """Renew the order until --expire (refreshInstance RENEWAL). INSTANCE is an instanceId or a tenant code."""
    make_marketplace(bridge_url).renew(instance, expire)


@sim_cli.command("refresh")
@click.argument("instance")
@click.option("--scene", required=True, type=click.Choice(REFRESH_SCENES),
              help="TRIAL_TO_FORMAL: a trial bought; RENEWAL: renewed; UNSUBSCRIBE_RENEWAL_PERIOD: a renewal "
                   "period returned; RENEWAL_CHANGE: renewed with the spec or quantity the change check allowed.")
@click.option("--expire", required=True, metavar="yyyyMMddHHmmss[SSS]",
              help="New expiry time, UTC: the documented 14 digits or the 17 of Huawei's own example.")
@click.option("--product-id", help="The new productId, sent when the period type changed.")
@sends_to_bridge
@with_appcontext
def refresh(instance, scene, expire, product_id, bridge_url):
    """refreshInstance in any scene, with a new order. INSTANCE is an instanceId or a tenant code."""
    make_marketplace(bridge_url).refresh(instance, scene, expire, product_id=product_id)


@sim_cli.command("upgrade")
@click.argument("instance")
@sends_to_bridge
@with_appcontext
def upgrade(instance, bridge_url):
    """upgradeInstance with the V2 body: instanceId and the new order only, no product fields (the
    vendor reads the new spec from the order). INSTANCE is an instanceId or a tenant code."""
    make_marketplace(bridge_url).upgrade(instance)


@sim_cli.command("change-check")
@click.argument("instance")
@click.option("--sku", "sku_code", required=True, help="productInfo.skuCode the buyer changes to.")
@click.option("--product-id", required=True, help="productInfo.productId (one per period type of the SKU).")
@click.option("--product-name", default="续费变更规格", show_default=True, help="productInfo.productName.")
@click.option("--quantity", type=click.IntRange(0), help="productInfo.linearValue: the quantity chosen, when the "
              "product has a numeric attribute.")
@sends_to_bridge
@with_appcontext
def change_check(instance, sku_code, product_id, product_name, quantity, bridge_url):
    """Ask whether the buyer may change spec or quantity at renewal (changeInstanceCheck), as the
    marketplace does before a RENEWAL_CHANGE. Exit status 1 when the bridge refuses the change."""
    info = {"productId": product_id, "skuCode": sku_code, "productName": product_name,
            **({"linearValue": quantity} if quantity is not None else {})}
    answer = make_marketplace(bridge_url).change_check(instance, info)
    if answer.get("resultCode") != SUCCESS:
        raise click.ClickException(f"the bridge refused the change: {answer.get('resultCode')} "
                                   f"{answer.get('resultMsg', '')}")


@sim_cli.command("bind")
@click.argument("code")
@sends_to_bridge
@with_appcontext
def bind(code, bridge_url):
    """The buyer binds the purchased app to the organisation: newInstance, then tenantSync,
    applicationSync, allOrgSync and authSync, each carrying the order's instanceId."""
    make_marketplace(bridge_url).bind(find_tenant(code))


@sim_cli.command("delete-tenant")
@click.argument("code")
@sends_to_bridge
@with_appcontext
def delete_tenant(code, bridge_url):
    """The tenant unbinds the app (tenantSync flag 0). `sim sync` binds it again."""
    make_marketplace(bridge_url).delete_tenant(find_tenant(code))


@sim_cli.command("probe")
@click.option("--rounds", default=2, show_default=True, type=click.IntRange(1, 1000),
              help="How many times the saved cases are replayed (the marketplace: twice a day, forever).")
@click.option("--seed", type=int, help="Seed of the random order, to replay one run exactly.")
@sends_to_bridge
@with_appcontext
def probe(rounds, seed, bridge_url):
    """Replay the seller's saved debug cases (testFlag 1) in random order, as certification and the
    daily probes do; every answer must be 000000."""
    driver = make_driver(bridge_url)
    cases = saved_debug_cases(services().directory.app_id, driver._public_key)
    report = run_probe(driver, cases, rounds=rounds, seed=seed)
    for failure in report.failures:
        click.echo(f"FAILED {failure}")
    click.echo(f"{report.calls} calls, {len(report.failures)} failed")
    if not report.passed:
        raise click.ClickException("the listing would fail the marketplace's probe")


@sim_cli.command("resend")
@sends_to_bridge
@with_appcontext
def resend(bridge_url):
    """Send a debug newInstance, drop its answer, send it again with the same nonce and body: the
    bridge must repeat its first answer."""
    driver = make_driver(bridge_url)
    _, body = saved_debug_cases(services().directory.app_id, None)[5]
    first, second = resend_after_lost_answer(driver, "basic", body)
    click.echo(f"first:  {first}")
    click.echo(f"resent: {second}")
    if first != second:
        raise click.ClickException("the re-send was not answered as the first call")


@sim_cli.command("fault")
@click.argument("tenant")
@click.argument("kind", type=click.Choice(FAULT_KINDS))
@click.option("--off", is_flag=True, help="Turn the fault off.")
@click.option("--seconds", type=float, help="Delay for `slow` (default 10).")
@with_appcontext
def fault(tenant, kind, off, seconds):
    """Make TENANT's authentication centre, or the marketplace's calls for TENANT, misbehave: """
    s = services()
    try:
        delay = set_fault(s.store, s.directory, tenant, kind, not off, seconds)
    except FaultError as exc:
        raise click.ClickException(str(exc)) from None
    state = "off" if off else ("on" + (f", {delay:g} s" if kind == "slow" else ""))
    click.echo(f"{tenant}: {kind} {state} ({DESCRIPTIONS[kind]})")


fault.help = (fault.help or "") + "; ".join(f"{k}: {v}" for k, v in DESCRIPTIONS.items()) + "."


@sim_cli.command("faults")
@with_appcontext
def faults():
    """List the faults that are on."""
    active = services().store.faults()
    if not active:
        click.echo("no faults")
        return
    _table([(code, kind, f"{seconds:g} s" if kind == "slow" else "") for code, kinds in active.items()
            for kind, seconds in kinds.items()], ("TENANT", "FAULT", "DELAY"))


@sim_cli.command("users")
@with_appcontext
def users():
    """The demo users, their passwords, and what each demonstrates."""
    d = services().directory
    rows = [(t.tenant_code, u.user_name, u.name, u.password, u.role, "yes" if u.authorised else "no",
             "yes" if u.enabled else "no", translate("en", u.demonstrates))
            for t in d.tenants for u in d.users(t, include_deleted=True)]
    _table(rows, ("TENANT", "USER", "NAME", "PASSWORD", "ROLE", "AUTHORISED", "ENABLED", "SHOWS"))


@sim_cli.command("instances")
@with_appcontext
def instances():
    """The orders placed by `sim sync`, as the simulator last left them."""
    records = services().store.instances()
    if not records:
        click.echo("no instances yet; run `flask --app simulator sim sync`")
        return
    _table([(r.tenant_code, r.instance_id, r.order_id, r.status, r.expire_time or "") for r in records],
           ("TENANT", "INSTANCE", "ORDER", "STATUS", "EXPIRES (UTC)"))


@sim_cli.command("reset")
@with_appcontext
def reset():
    """Forget every change, sign-in, code, token, fault and instance: back to the seed (the bridge
    keeps what it was sent; `sim sync` sends the seed again)."""
    services().store.reset()
    click.echo("simulator state reset to the seed")
