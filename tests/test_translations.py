"""The gettext catalogs: every text the code and the templates use has a translation in both
languages, the committed .mo files are what `make translations` compiles, and the ids looked up under
computed names (refusal reasons, stored codes) are all in the catalogs."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po

from admin.i18n import ERROR_TEXTS, LABELS, RESULT_TEXTS, SIGN_IN_ERRORS
from admin.services import LOGIN_OUTCOMES
from simulator.i18n import LOCALES as SIM_LOCALES
from simulator.i18n import ROLES
from sso.errors import REASONS
from sso.i18n import LOCALES, OAUTH_ERRORS, PAGE_TEXTS
from tenants.errors import ResultCode
from tenants.models import InstanceStatus

ROOT = Path(__file__).resolve().parent.parent
# (babel.cfg, catalog directory): the bridge with its console, and the simulator on its own.
CATALOGS = [("babel.cfg", "translations"), ("simulator/babel.cfg", "simulator/translations")]


def _extracted(config: str) -> set[str]:
    with open(ROOT / config) as fh:
        method_map, options_map = parse_mapping_cfg(fh, config)
    return {message for _file, _line, message, _comments, _context in extract_from_dir(ROOT, method_map, options_map)}


def _catalog(directory: str, locale: str):
    with open(ROOT / directory / locale / "LC_MESSAGES" / "messages.po", "rb") as fh:
        return read_po(fh, locale=locale)


@pytest.mark.parametrize("config,directory", CATALOGS)
@pytest.mark.parametrize("locale", sorted(set(LOCALES.values()) | set(SIM_LOCALES.values())))
def test_every_text_used_is_translated(config, directory, locale):
    used = _extracted(config)
    assert len(used) > 50  # the extraction itself worked
    catalog = _catalog(directory, locale)
    untranslated = sorted(key for key in used
                          if key not in catalog or not catalog[key].string.strip() or catalog[key].fuzzy)
    assert not untranslated, f"{directory}/{locale}: run make translations and fill in {untranslated}"


@pytest.mark.parametrize("config,directory", CATALOGS)
def test_no_dead_texts_and_same_placeholders_in_both_languages(config, directory):
    used = _extracted(config)
    zh, en = _catalog(directory, "zh_Hans_CN"), _catalog(directory, "en")
    for catalog in (zh, en):
        assert {m.id for m in catalog if m.id} <= used  # `make translations` drops what nothing uses
    for key in used:
        names = [set(re.findall(r"%\((\w+)\)s", c[key].string)) for c in (zh, en)]
        assert names[0] == names[1], key


@pytest.mark.parametrize("_config,directory", CATALOGS)
@pytest.mark.parametrize("locale", ["zh_Hans_CN", "en"])
def test_committed_mo_files_are_compiled_from_the_po_files(_config, directory, locale):
    compiled = io.BytesIO()
    write_mo(compiled, _catalog(directory, locale))
    with open(ROOT / directory / locale / "LC_MESSAGES" / "messages.mo", "rb") as fh:
        committed = {m.id: m.string for m in read_mo(fh) if m.id}
    compiled.seek(0)
    assert committed == {m.id: m.string for m in read_mo(compiled) if m.id}, "run make translations"


def test_ids_looked_up_under_computed_names_are_extracted():
    # refused.html: '<reason>.title'/'.text'; admin login and error pages; stored codes; demo roles.
    assert {f"{reason}.{part}" for reason in REASONS for part in ("title", "text")} <= set(PAGE_TEXTS)
    assert {f"admin.outcome.{outcome}" for outcome in LOGIN_OUTCOMES} <= set(LABELS)
    assert {f"admin.instance.{v}" for k, v in vars(InstanceStatus).items() if k.isupper()} <= set(LABELS)
    assert {f"admin.result.{v}" for k, v in vars(ResultCode).items() if k.isupper()} <= set(RESULT_TEXTS)
    bridge = _extracted("babel.cfg")
    assert set(PAGE_TEXTS) | set(ERROR_TEXTS) | set(LABELS) | set(SIGN_IN_ERRORS) | set(RESULT_TEXTS) <= bridge
    assert set(OAUTH_ERRORS) <= bridge
    assert set(ROLES) <= _extracted("simulator/babel.cfg")
