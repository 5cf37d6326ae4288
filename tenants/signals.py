"""What other packages may react to, without `tenants` knowing them (sso decides what ends).

Sent inside the sync call's transaction, so a reaction commits or rolls back with the change.
`tenants` only reports facts; whether a session may go on is sso's admission rule."""

from blinker import Namespace

_signals = Namespace()

# Something that admission depends on changed for these users (a list) or for every user of the
# tenant (None). kwargs: tenant_id, user_names, reason (a short machine word: user_revoked,
# user_disabled, user_deleted, tenant_deleted, instance_frozen, instance_released, instance_expired).
access_changed = _signals.signal("access-changed")

# The tenant's authentication centre moved (a new domainName): logins under way must not finish.
centre_moved = _signals.signal("centre-moved")


def revoke_access(tenant_id: str, user_names: list[str] | None, reason: str) -> None:
    access_changed.send("tenants", tenant_id=tenant_id, user_names=user_names, reason=reason)


def centre_changed(tenant_id: str) -> None:
    centre_moved.send("tenants", tenant_id=tenant_id)
