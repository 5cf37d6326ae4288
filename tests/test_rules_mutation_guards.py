"""What the rule modules (tenants/signing, tenants/parsing, tenants/newer, sso/admission) decide,
as KooGallery or a user sees it: tests added for the mutants mutmut found alive (docs/mutation.md)."""

from __future__ import annotations
