"""Encryption at rest for secrets the bridge must be able to read back (tenant client secrets,
later IdP tokens). Fernet (AES-128-CBC + HMAC-SHA256) with a key list: the first key encrypts,
every key decrypts, so keys rotate by prepending a new one and running `flask keys rotate-data`."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class SecretBox:
    def __init__(self, keys: list[str]):
        self._fernet = MultiFernet([Fernet(k) for k in keys])

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except InvalidToken:
            raise InvalidToken("stored secret does not decrypt with any BRIDGE_DATA_KEYS entry") from None

    def rotate(self, token: str) -> str:
        """The same secret encrypted with the current (first) key."""
        return self._fernet.rotate(token.encode("ascii")).decode("ascii")


# Columns that hold SecretBox tokens, registered by the packages that own them, so key rotation
# reaches every one of them without this module knowing the models.
ENCRYPTED_COLUMNS: list = []


def register_encrypted_column(column) -> None:
    if column not in ENCRYPTED_COLUMNS:
        ENCRYPTED_COLUMNS.append(column)
