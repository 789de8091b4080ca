"""The rule editor's pages in Dutch for a Dutch browser and in English without Accept-Language: the rulesets index,
a draft, a rule's editor, the impact preview, the alert burden (finding titles from the catalogue's Dutch) and an
error page; refusals are shown in Dutch and audited in English."""

import json

import pytest

from audit import log as audit
from engine import ruleset as rs
from review_ui import workflow
from review_ui.db import db

PASSWORD = "correct horse battery"
NEWEST = rs.load().version

# (page, what a Dutch rule editor reads, what an English one reads): each language's words are absent from the other
PAGES = [
    (
        "/rulesets/",
        ["<h1>Regelsets</h1>", "Gepubliceerde versies", "Concepten", "Twee versies vergelijken", "in bewerking"],
        ["<h1>Rulesets</h1>", "Published versions", "Drafts", "Compare two versions", "editing"],
    ),
    (
        "/rulesets/drafts/1",
        [
            "<h2>Controles</h2>",
            "Ter goedkeuring indienen",
            "Wijzigingsnotitie opslaan",
            "<strong>Publiceren is geblokkeerd</strong>",
            "een wijzigingsnotitie is verplicht: beschrijf wat er is gewijzigd en waarom",
            "Signaallast van de regels die dit concept wijzigt",
            "Geneesmiddelen",
            "Bovengrenzen",
        ],
        [
            "<h2>Checks</h2>",
            "Submit for approval",
            "Save change note",
            "<strong>Publishing is blocked</strong>",
            "a change note is required: say what changed and why",
            "Alert burden of the rules this draft changes",
            "Drugs",
            "Upper limits",
        ],
    ),
    (
        "/rulesets/drafts/1/rules/HYPOMAGNESEMIA",
        [
            "<h1>Regel HYPOMAGNESEMIA</h1>",
            "Als (elk patroon moet op één gegeven passen)",
            "<h2>Onderbouwing</h2>",
            "Betrouwbaarheid",
            "Uren Mg vóór het geneesmiddel",
            "Regel opslaan",
            "Deze regel verwijderen",
        ],
        [
            "<h1>Rule HYPOMAGNESEMIA</h1>",
            "When (every pattern must match one fact)",
            "<h2>Evidence</h2>",
            "Confidence",
            "Hours Mg before the drug",
            "Save rule",
            "Remove this rule",
        ],
    ),
    (
        "/rulesets/drafts/1/impact",
        ["Gevolgen van magnesium", "Opnieuw doorrekenen", "opgeslagen casussen", "Intakebestand", "Gevolgen bekijken"],
        ["Impact preview of magnesium", "Replay", "stored cases", "Intake file", "Preview impact"],
    ),
    (
        "/rulesets/burden",
        ["<h1>Signaallast per regel</h1>", "Herhalingspercentage", "Dosis opgegeven als zoutgewicht", "CSV downloaden"],
        ["<h1>Alert burden per rule</h1>", "Repeat rate", "Dose given as salt weight", "Download CSV"],
    ),
    (
        "/rulesets/drafts/99",
        ["<h1>Fout 404</h1>", "Op dit adres staat niets.", "Terug naar de startpagina"],
        ["<h1>Error 404</h1>", "There is nothing at this address.", "Back to the start page"],
    ),
]


@pytest.fixture
def editors(app):
    """Ed starts a draft of the next version; Rita is the second rule editor."""
    with app.app_context():
        workflow.add_user("ed", PASSWORD, "rule_editor", actor="test")
        workflow.add_user("rita", PASSWORD, "rule_editor", actor="test")
    client = signed_in(app, "ed")
    assert client.post("/rulesets/magnesium/drafts").status_code == 302
    return app


def signed_in(app, username, language=None):
    client = app.test_client()
    if language:
        client.environ_base["HTTP_ACCEPT_LANGUAGE"] = language
    client.post("/login", data={"username": username, "password": PASSWORD})
    return client


def page(client, url):
    response = client.get(url)
    return response.status_code, response.get_data(as_text=True)


@pytest.mark.parametrize("url, dutch, english", PAGES)
def test_a_dutch_rule_editor_reads_the_page_in_dutch(editors, url, dutch, english):
    status, html = page(signed_in(editors, "ed", "nl-NL,nl;q=0.9,en;q=0.5"), url)
    assert status == (404 if url.endswith("/99") else 200)
    assert '<html lang="nl">' in html
    assert [word for word in dutch if word not in html] == []
    assert [word for word in english if word in html] == []


@pytest.mark.parametrize("url, dutch, english", PAGES)
def test_without_accept_language_the_page_stays_english(editors, url, dutch, english):
    status, html = page(signed_in(editors, "ed"), url)
    assert status == (404 if url.endswith("/99") else 200)
    assert '<html lang="en">' in html
    assert [word for word in english if word not in html] == []
    assert [word for word in dutch if word in html] == []


def test_the_impact_totals_and_flash_in_dutch_beside_english(editors):
    form = {"source": "cases", "limit": "10"}
    dutch = signed_in(editors, "ed", "nl").post("/rulesets/drafts/1/impact", data=form).get_data(as_text=True)
    assert f"Opnieuw doorgerekend met v{NEWEST} en met het concept: de nieuwste 0 opgeslagen casussen." in dutch
    assert "<p>0 records opnieuw doorgerekend, 0 zouden veranderen</p>" in dutch and "records replayed" not in dutch
    english = signed_in(editors, "ed").post("/rulesets/drafts/1/impact", data=form).get_data(as_text=True)
    assert f"Replayed the newest 0 stored cases through v{NEWEST} and the draft." in english
    assert "<p>0 records replayed, 0 would change</p>" in english and "doorgerekend" not in english


def test_a_refused_approval_is_shown_in_dutch_and_audited_in_english(editors):
    """The audit log keeps one language: the reason stored is English whatever the reader's language."""
    ed = signed_in(editors, "ed", "nl")
    ed.post("/rulesets/drafts/1/submit", data={"expected_lock": "1"})
    assert "Dit concept is ter goedkeuring ingediend en alleen-lezen" in page(ed, "/rulesets/drafts/1")[1]
    rita = signed_in(editors, "rita", "nl")
    refused = rita.post("/rulesets/drafts/1/publish", data={"expected_lock": "2"}, follow_redirects=True)
    html = refused.get_data(as_text=True)
    assert "Onderteken met uw wachtwoord om goed te keuren." in html
    assert "Sign with your password to approve." not in html
    assert "Ondertekenen betekent: “Ik heb dit concept" in html
    with editors.app_context():
        entry = audit.read(db.session, limit=1)[0]
        assert entry.action == "ruleset.publish.refused"
        assert "Sign with your password to approve." in json.dumps(entry.as_dict(), ensure_ascii=False)
        assert "Onderteken" not in json.dumps(entry.as_dict(), ensure_ascii=False)


def test_a_stale_edit_is_refused_in_dutch_for_a_dutch_reader_and_in_english_otherwise(editors):
    note = {"expected_lock": "0", "change_note": "stale"}  # the draft's lock is 1: someone saved in between
    dutch = signed_in(editors, "ed", "nl").post("/rulesets/drafts/1/note", data=note, follow_redirects=True)
    assert "Iemand anders heeft dit concept gewijzigd terwijl u het bewerkte" in dutch.get_data(as_text=True)
    english = signed_in(editors, "ed").post("/rulesets/drafts/1/note", data=note, follow_redirects=True)
    assert "Someone changed this draft while you were editing it" in english.get_data(as_text=True)


@pytest.mark.parametrize(
    "language, said, not_said",
    [
        ("nl", ["<h1>Fout 403</h1>", "Uw rol geeft geen toegang tot deze pagina."], ["Error 403", "Your role"]),
        (None, ["<h1>Error 403</h1>", "Your role does not give access to this page."], ["Fout 403", "Uw rol"]),
    ],
)
def test_a_clinician_is_refused_a_draft_in_the_browser_language(editors, language, said, not_said):
    with editors.app_context():
        workflow.add_user("carol", PASSWORD, "clinician", actor="test")
    status, html = page(signed_in(editors, "carol", language), "/rulesets/drafts/1")
    assert status == 403
    assert [text for text in said if text not in html] == [] and [text for text in not_said if text in html] == []


@pytest.mark.parametrize(
    "language, prompt, other",
    [("nl", "Meld u aan om verder te gaan.", "Please sign in"), (None, "Please sign in to continue.", "Meld u aan")],
)
def test_the_sign_in_prompt_is_in_the_browser_language(app, language, prompt, other):
    client = app.test_client()
    if language:
        client.environ_base["HTTP_ACCEPT_LANGUAGE"] = language
    html = client.get("/rulesets/", follow_redirects=True).get_data(as_text=True)
    assert prompt in html and other not in html
