"""Each user's page language: English, Nederlands or as the browser says; chosen on the settings page, audited."""

import pytest

from audit import log as audit
from review_ui import preferences, workflow
from review_ui.db import db
from review_ui.models import User

PASSWORD = "correct horse battery"
ENGLISH_BROWSER = {"Accept-Language": "en-GB,en;q=0.9"}
DUTCH_BROWSER = {"Accept-Language": "nl-NL,nl;q=0.9,en;q=0.5"}


@pytest.fixture
def client(app):
    with app.app_context():
        workflow.add_user("alice", PASSWORD, "clinician", actor="test")
        workflow.add_user("ed", PASSWORD, "rule_editor", actor="test")
    client = app.test_client()
    client.post("/login", data={"username": "alice", "password": PASSWORD})
    return client


def choose(client, language, headers=ENGLISH_BROWSER):
    return client.post("/settings", data={"language": language}, headers=headers, follow_redirects=True)


def page(client, headers):
    return client.get("/cases", headers=headers).get_data(as_text=True)


def stored(app, username="alice"):
    with app.app_context():
        return db.session.query(User).filter_by(username=username).one().language


def test_the_header_leads_to_the_settings_with_the_three_choices(client):
    worklist = page(client, ENGLISH_BROWSER)
    assert '<a href="/settings" id="settings-link">Settings</a>' in worklist
    settings = client.get("/settings", headers=ENGLISH_BROWSER).get_data(as_text=True)
    assert "<h1>Settings</h1>" in settings and "<legend>Page language</legend>" in settings
    for label in ('value="en"> English</label>', 'value="nl"> Nederlands</label>'):
        assert label in settings
    assert 'value="browser"> As my browser says <small>(now: English)</small></label>' in settings
    dutch = client.get("/settings", headers=DUTCH_BROWSER).get_data(as_text=True)
    assert "Zoals mijn browser aangeeft <small>(nu: Nederlands)</small>" in dutch
    assert 'checked id="language-0" name="language" type="radio" value="browser"' in settings


@pytest.mark.parametrize(
    "chosen, browser, lang, heading",
    [
        ("nl", ENGLISH_BROWSER, "nl", "Instellingen"),  # the preference wins over an English browser
        ("en", DUTCH_BROWSER, "en", "Settings"),  # and over a Dutch one
        ("browser", DUTCH_BROWSER, "nl", "Instellingen"),  # "as my browser" follows Accept-Language
        ("browser", ENGLISH_BROWSER, "en", "Settings"),
    ],
)
def test_the_users_choice_decides_the_page_language(app, client, chosen, browser, lang, heading):
    response = choose(client, chosen, headers=browser)
    text = response.get_data(as_text=True)
    assert response.request.path == "/settings"
    assert f'<html lang="{lang}">' in text and f"<h1>{heading}</h1>" in text
    saved = "Uw taal voor de pagina&#39;s is opgeslagen." if lang == "nl" else "Your page language is saved."
    assert saved in text  # said in the language just chosen
    assert f'<html lang="{lang}">' in page(client, browser)
    assert stored(app) == (None if chosen == "browser" else chosen)


def test_nederlands_then_back_to_the_browser(app, client):
    choose(client, "nl")
    assert '<html lang="nl">' in page(client, ENGLISH_BROWSER)
    choose(client, "browser")
    assert '<html lang="en">' in page(client, ENGLISH_BROWSER)
    assert '<html lang="nl">' in page(client, DUTCH_BROWSER)
    assert stored(app) is None


def test_each_choice_is_audited(app, client):
    choose(client, "nl")
    choose(client, "browser")
    with app.app_context():
        entries = [e.as_dict() for e in audit.read(db.session, action="user.language", newest_first=False)]
        assert audit.verify(db.session).ok
    assert [(e["actor"], e["target_type"], e["target_id"]) for e in entries] == [("alice", "user", "alice")] * 2
    assert [(e["before"], e["after"]) for e in entries] == [
        ({"language": None}, {"language": "nl"}),
        ({"language": "nl"}, {"language": None}),
    ]


def test_a_language_not_offered_is_refused_and_nothing_is_written(app, client):
    response = choose(client, "de")
    assert response.status_code == 400
    assert "Not a valid choice" in response.get_data(as_text=True)
    with app.app_context():
        assert audit.read(db.session, action="user.language") == []
        alice = db.session.query(User).filter_by(username="alice").one()
        with pytest.raises(workflow.WorkflowError, match="Choose English, Nederlands or your browser's language."):
            preferences.set_page_language(alice, "fr")
    assert stored(app) is None


def test_a_choice_without_the_forms_csrf_token_is_refused(app, client):
    app.config["WTF_CSRF_ENABLED"] = True
    response = choose(client, "nl")
    assert response.status_code == 400
    assert stored(app) is None


def test_one_users_choice_is_theirs_alone(app, client):
    choose(client, "nl")
    editor = app.test_client()
    editor.post("/login", data={"username": "ed", "password": PASSWORD})
    rulesets = editor.get("/rulesets/", headers=ENGLISH_BROWSER).get_data(as_text=True)
    assert '<html lang="en">' in rulesets
    assert editor.get("/settings").status_code == 200  # every role has its settings
    assert stored(app, "ed") is None
