"""The Spanish catalogue is complete and compiled: every message in the .po has
a translation, none is fuzzy, and the shipped .mo says the same (a .po edited
without `compilemessages` would silently show English)."""

from __future__ import annotations

import ast
import gettext
from pathlib import Path

from django.conf import settings

CATALOGUE = Path(settings.BASE_DIR) / "locale" / "es" / "LC_MESSAGES"


def entries() -> list[dict[str, object]]:
    """A small reader of the .po format: msgctxt, msgid(_plural), msgstr[n]."""
    found: list[dict[str, object]] = []
    current: dict[str, object] = {}
    key = ""
    for line in [*(CATALOGUE / "django.po").read_text().splitlines(), ""]:
        if not line.strip():
            if current.get("msgid"):
                found.append(current)
            current, key = {}, ""
        elif line.startswith("#,"):
            current["flags"] = line[2:]
        elif line.startswith("#"):
            continue
        elif line.startswith('"'):
            current[key] = str(current[key]) + ast.literal_eval(line)
        else:
            key, _, value = line.partition(" ")
            current[key] = ast.literal_eval(value)
    return found


def test_every_message_is_translated_and_none_is_fuzzy() -> None:
    missing = []
    for entry in entries():
        if "fuzzy" in str(entry.get("flags", "")):
            missing.append(f"fuzzy: {entry['msgid']}")
        translations = [v for k, v in entry.items() if k.startswith("msgstr")]
        if not all(translations):
            missing.append(str(entry["msgid"]))
    assert missing == []


def test_the_compiled_catalogue_matches_the_source() -> None:
    with (CATALOGUE / "django.mo").open("rb") as handle:
        compiled = gettext.GNUTranslations(handle)
    stale = []
    for entry in entries():
        msgid, context = str(entry["msgid"]), entry.get("msgctxt")
        if "msgid_plural" in entry:
            got = compiled.ngettext(msgid, str(entry["msgid_plural"]), 1)
            want = entry["msgstr[0]"]
        elif context:
            got = compiled.pgettext(str(context), msgid)
            want = entry["msgstr"]
        else:
            got, want = compiled.gettext(msgid), entry["msgstr"]
        if got != want:
            stale.append(msgid)
    assert stale == [], "run manage.py compilemessages"
