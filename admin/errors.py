"""Refusals on the console's pages. Views raise; the blueprint's handler renders a clear page."""

from __future__ import annotations


class AdminError(Exception):
    """`key` names the page's text in the catalogs (admin.error.<key>.title/.text); `status` the HTTP status."""

    def __init__(self, key: str, status: int = 400):
        super().__init__(key)
        self.key = key
        self.status = status
