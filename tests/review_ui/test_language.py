"""Pages in English or Dutch: the user's preference, else the browser's Accept-Language, else English; and the
Dutch catalogue translates every marked text, with the same placeholders."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from tests.helpers import ROOT

CATALOGUE = ROOT / "review_ui" / "translations" / "nl" / "LC_MESSAGES" / "messages.po"


def sign_in_page(app, accept_language=None):
    headers = {"Accept-Language": accept_language} if accept_language else {}
    return app.test_client().get("/login", headers=headers).get_data(as_text=True)


@pytest.mark.parametrize("header", ["nl-NL,nl;q=0.9,en;q=0.5", "nl", "nl-BE"])
def test_a_dutch_browser_gets_dutch_pages(app, header):
    page = sign_in_page(app, header)
    assert '<html lang="nl">' in page
    assert "<h1>Aanmelden</h1>" in page and "Gebruikersnaam" in page and "Wachtwoord" in page
    assert "Sign in" not in page


@pytest.mark.parametrize("header", [None, "en-US,en;q=0.9", "fr-FR,fr;q=0.9", "de,en;q=0.8,nl;q=0.5"])
def test_any_other_browser_gets_english(app, header):
    page = sign_in_page(app, header)
    assert '<html lang="en">' in page
    assert "<h1>Sign in</h1>" in page and "Username" in page
    assert "Aanmelden" not in page


def placeholders(text: str) -> list[str]:
    return sorted(re.findall(r"%\(\w+\)s|%s|%d|\{\w*\}", text))


def catalogue(path: Path):
    with path.open("rb") as f:
        return read_po(f)


def test_every_marked_text_has_its_dutch(tmp_path):
    """`make translations` keeps the catalogue in step with the pages; a text marked but not translated fails."""
    template = tmp_path / "messages.pot"
    pybabel = Path(sys.executable).with_name("pybabel")
    subprocess.run(
        [pybabel, "extract", "-F", ROOT / "babel.cfg", "-k", "_l", "-o", template, ROOT / "review_ui"],
        check=True,
        capture_output=True,
    )
    marked = {m.id for m in catalogue(template) if m.id}
    dutch = {m.id: m.string for m in catalogue(CATALOGUE) if m.id}
    assert marked, "nothing extracted: babel.cfg no longer finds the pages"
    assert sorted(marked - dutch.keys()) == [], "marked but not in the Dutch catalogue: run make translations"
    untranslated = sorted(str(m) for m in marked if not all(forms(dutch[m])))  # a plural needs every form
    assert untranslated == []
    for msgid in marked:
        for english, translated in zip(forms(msgid), forms(dutch[msgid]), strict=False):
            assert placeholders(translated) == placeholders(english), msgid


def forms(text):
    """A message's forms: one for a plain text, singular and plural for a plural one."""
    return text if isinstance(text, tuple) else (text,)
