"""A test stand-in for KooGallery's caller. The signing itself lives in devtools/koogallery.py
(bench/ uses it too); this adds a client that sends signed calls through a Flask test client."""

from __future__ import annotations

import json

from devtools.koogallery import basic_query, kit_headers, sorted_payload

__all__ = ["KooGallery", "basic_query", "kit_headers", "sorted_payload"]


class KooGallery:
    """Sends signed calls through a Flask test client (or anything with .post)."""

    def __init__(self, client, kit_key: str, basic_key: str, produce_path: str = "/produce"):
        self.client, self.kit_key, self.basic_key, self.path = client, kit_key, basic_key, produce_path

    def kit(self, interface: str, body: dict, **sign):
        raw = json.dumps(body, ensure_ascii=False)
        headers = kit_headers(self.kit_key, body, **sign)
        return self.client.post(f"{self.path}/produceAPI/v2/{interface}", data=raw.encode(), headers=headers)

    def basic(self, body: dict, **sign):
        raw = json.dumps(body, ensure_ascii=False)
        return self.client.post(self.path, query_string=basic_query(self.basic_key, body, **sign), data=raw.encode(),
                                headers={"Content-Type": "application/json;charset=utf8"})
