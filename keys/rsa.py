"""The RSA key pair for applicationSync.clientSecret (spec §5.2).

KooGallery encrypts the tenant's OAuth client secret with the public key the seller pasted into
the application credential (RSA ≥ 3072 bits, OAEP). The OAEP hash is not documented, so
decryption tries the spec's candidate parameter sets and reports which one worked."""

from __future__ import annotations

import base64
import binascii
import os
from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

MIN_KEY_BITS = 3072

# (name, OAEP digest, MGF1 digest): Java's "OAEPWithSHA-256AndMGF1Padding" is SHA-256/MGF1-SHA-1.
OAEP_CANDIDATES = (
    ("OAEP-SHA256-MGF1-SHA256", hashes.SHA256, hashes.SHA256),
    ("OAEP-SHA256-MGF1-SHA1", hashes.SHA256, hashes.SHA1),
    ("OAEP-SHA1-MGF1-SHA1", hashes.SHA1, hashes.SHA1),
)


class KeyFileError(Exception):
    """The private key file exists but cannot be used."""


class DecryptError(Exception):
    """A clientSecret that no candidate parameter set decrypts."""


def generate_private_key(bits: int = MIN_KEY_BITS) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def write_private_key(key: rsa.RSAPrivateKey, path: str) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    # Created 0600 from the start: the key is never readable by others, not even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)


def load_private_key(path: str) -> rsa.RSAPrivateKey | None:
    """The key at `path`, None if there is no file; KeyFileError if it is not a usable RSA key."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise KeyFileError(f"RSA private key {path} cannot be read: {exc.strerror}") from None
    try:
        key = _parse_pem_private_key(data)
    except (ValueError, TypeError):
        raise KeyFileError(f"RSA private key {path} is not an unencrypted PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeyFileError(f"RSA private key {path} is not an RSA key")
    if key.key_size < MIN_KEY_BITS:
        raise KeyFileError(f"RSA private key {path} has {key.key_size} bits; KooGallery requires >= {MIN_KEY_BITS}")
    return key


@lru_cache(maxsize=4)
def _parse_pem_private_key(data: bytes):
    # Parsing checks the key, about 140 ms for 3072 bits: apps built in one process from the same
    # file (the CLI, the tests) parse it once. Keyed by the file's bytes, so a new key is parsed anew.
    return serialization.load_pem_private_key(data, password=None)


def public_key_for_koogallery(key: rsa.RSAPrivateKey) -> str:
    """Base64 SubjectPublicKeyInfo on one line: the PEM body without its BEGIN/END lines, which
    is what the application-credential form takes (spec §5.2)."""
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode("ascii")


def public_key_from_koogallery(text: str) -> rsa.RSAPublicKey:
    """Parse a pasted public key (with or without PEM armour); the simulator encrypts with it."""
    body = "".join(line for line in text.strip().splitlines() if not line.startswith("-----"))
    key = serialization.load_der_public_key(base64.b64decode(body))
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("not an RSA public key")
    return key


def encrypt_client_secret(secret: str, public_key: rsa.RSAPublicKey, candidate: str = OAEP_CANDIDATES[0][0]) -> str:
    """What KooGallery does to a clientSecret (used by the simulator and the tests)."""
    _, digest, mgf = next(c for c in OAEP_CANDIDATES if c[0] == candidate)
    ciphertext = public_key.encrypt(
        secret.encode("utf-8"), padding.OAEP(mgf=padding.MGF1(mgf()), algorithm=digest(), label=None)
    )
    return base64.b64encode(ciphertext).decode("ascii")


def decrypt_client_secret(ciphertext_b64: str, key: rsa.RSAPrivateKey) -> tuple[str, str]:
    """(plaintext, parameter set that worked). Raises DecryptError, never with key details."""
    compact = "".join(str(ciphertext_b64).split())
    try:
        # Accept standard and URL-safe alphabets, with or without padding.
        raw = base64.b64decode(compact.replace("-", "+").replace("_", "/") + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise DecryptError("clientSecret is not Base64") from None
    if len(raw) != key.key_size // 8:
        raise DecryptError(
            f"clientSecret is {len(raw)} bytes; a {key.key_size}-bit key expects {key.key_size // 8} "
            "(was it encrypted with this bridge's public key?)"
        )
    for name, digest, mgf in OAEP_CANDIDATES:
        try:
            plain = key.decrypt(raw, padding.OAEP(mgf=padding.MGF1(mgf()), algorithm=digest(), label=None))
        except ValueError:
            continue
        try:
            return plain.decode("utf-8"), name
        except UnicodeDecodeError:
            raise DecryptError("clientSecret decrypts to bytes that are not UTF-8") from None
    raise DecryptError("clientSecret does not decrypt with this bridge's private key (public key registered in "
                       "the application credential differs?)")
