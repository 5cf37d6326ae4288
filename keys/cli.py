"""`flask keys ...`: make and show the applicationSync key pair, rotate the data keys."""

from __future__ import annotations

from pathlib import Path

import click
from cryptography.hazmat.primitives import serialization
from flask import current_app
from flask.cli import with_appcontext

from extensions import db
from keys import keyring
from keys.datakey import ENCRYPTED_COLUMNS
from keys.rsa import MIN_KEY_BITS, generate_private_key, public_key_for_koogallery, write_private_key


@click.group("keys", help="Key pair for applicationSync.clientSecret, and data-key rotation.")
def keys_cli():
    pass


def _print_public(key) -> None:
    click.echo("Public key to paste into KooGallery (seller centre > application credential > public key):")
    click.echo("")
    click.echo(public_key_for_koogallery(key))


@keys_cli.command("generate")
@click.option("--out", type=click.Path(dir_okay=False), help="Where to write the private key "
              "(default: BRIDGE_RSA_PRIVATE_KEY_FILE).")
@click.option("--bits", type=click.IntRange(min=MIN_KEY_BITS), default=MIN_KEY_BITS, show_default=True)
@click.option("--force", is_flag=True, help="Replace an existing key. Secrets already encrypted for the old "
              "public key will no longer decrypt: update the application credential at once.")
@with_appcontext
def generate(out, bits, force):
    """Write a new RSA key pair and print the public key as KooGallery wants it."""
    path = Path(out or current_app.config["RSA_PRIVATE_KEY_FILE"])
    if path.exists() and not force:
        raise click.ClickException(f"{path} already exists; use `flask keys show-public`, or --force to replace it")
    key = generate_private_key(bits)
    write_private_key(key, str(path))
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    Path(f"{path}.pub").write_bytes(public_pem)
    click.echo(f"Private key written to {path} (mode 0600). Keep it on the bridge's hosts only.")
    click.echo(f"Public key (PEM) written to {path}.pub.")
    if out and Path(out).resolve() != Path(current_app.config["RSA_PRIVATE_KEY_FILE"]).resolve():
        click.echo("Point BRIDGE_RSA_PRIVATE_KEY_FILE at it before starting the bridge.")
    click.echo("")
    _print_public(key)


@keys_cli.command("show-public")
@with_appcontext
def show_public():
    """Print the public key again."""
    key = keyring().private_key
    if key is None:
        raise click.ClickException(
            f"no private key at {keyring().private_key_file}; run `flask keys generate` first"
        )
    _print_public(key)


@keys_cli.command("rotate-data")
@with_appcontext
def rotate_data():
    """Re-encrypt every stored secret with the first BRIDGE_DATA_KEYS entry.

    Prepend a new key to BRIDGE_DATA_KEYS (keep the old ones), restart, run this, then remove
    the old keys."""
    box = keyring().data
    total = 0
    for column in ENCRYPTED_COLUMNS:
        model = column.class_
        rows = db.session.execute(db.select(model).where(column.isnot(None))).scalars()
        for row in rows:
            setattr(row, column.key, box.rotate(getattr(row, column.key)))
            total += 1
    db.session.commit()
    click.echo(f"re-encrypted {total} stored secret(s) with the current data key")


@keys_cli.command("rotate-signing")
@with_appcontext
def rotate_signing():
    """New ID-token signing key. Earlier keys stay in the JWKS until their tokens have expired."""
    from keys.signing import rotate_signing_key

    row = rotate_signing_key()
    db.session.commit()
    click.echo(f"new signing key {row.kid}; previous keys retired (still published for "
               f"{current_app.config['OIDC_ID_TOKEN_LIFETIME']}s)")
