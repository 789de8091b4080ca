"""The sources page: a full citation per tag with its own anchor, unverified and secondary sources marked."""

import re

import pytest

from review_ui.citations import link_of, render_markdown


def section(html: str, tag: str) -> str:
    """The list item of one source, by its anchor."""
    match = re.search(rf'<li id="{re.escape(tag)}" tabindex="-1" class="source">(.*?)</li>', html, re.S)
    assert match, f"no anchor {tag}"
    return match.group(1)


@pytest.fixture
def page(app):
    response = app.test_client().get("/sources")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_every_tag_has_its_anchor_and_a_link_to_it(page):
    for tag in ("S1", "S2", "S3", "S3a", "S5", "POLICY", "SMPC_MAALOX"):
        assert f'<li id="{tag}" tabindex="-1" class="source">' in page
        assert f'<a href="#{tag}">{tag}</a>' in page
    assert page.count('class="source"') == len(set(re.findall(r'<li id="([^"]+)" tabindex', page)))


def test_a_full_citation_title_publisher_year_and_the_link_as_text(page):
    s2 = section(page, "S2")
    assert "Institute of Medicine (IOM). <cite>Dietary Reference Intakes: Applications in Dietary Assessment" in s2
    assert ", 2000." in s2
    assert (
        '<a href="https://nationalacademies.org/read/9956/chapter/28" rel="noopener noreferrer">'
        "nationalacademies.org/read/9956/chapter/28</a>"
    ) in s2


def test_a_verified_primary_source_carries_no_mark(page):
    s1 = section(page, "S1")
    assert "Institute of Medicine, Food and Nutrition Board" in s1
    assert "mark-unverified" not in s1 and "mark-secondary" not in s1


def test_an_unverified_source_is_marked(page):
    s5 = section(page, "S5")
    assert '<span class="mark mark-unverified">unverified</span>' in s5
    assert "mark-secondary" not in s5


def test_a_secondary_source_is_marked_as_such_not_as_unverified(page):
    s3 = section(page, "S3")
    assert '<span class="mark mark-secondary">secondary source</span>' in s3
    assert "mark-unverified" not in s3
    assert 'Part of <a href="#S3">S3</a>' in section(page, "S3a")


def test_the_citation_text_is_rendered_markdown(page):
    s3 = section(page, "S3")
    assert "Primary page <strong>not read</strong>" in s3
    assert "<em>Magnesium — Fact Sheet for Health Professionals</em>" in s3
    assert "**" not in s3


def test_the_page_in_dutch(app):
    html = app.test_client().get("/sources", headers={"Accept-Language": "nl"}).get_data(as_text=True)
    assert '<html lang="nl">' in html
    assert "Bronnen van regelset magnesium v3" in html
    assert '<span class="mark mark-unverified">niet geverifieerd</span>' in section(html, "S5")
    assert '<span class="mark mark-secondary">secundaire bron</span>' in section(html, "S3")


@pytest.mark.parametrize(
    "text, html",
    [
        ("**not read** and *DRIs*", "<strong>not read</strong> and <em>DRIs</em>"),
        ("`convert_magnesium_unit` factors", "<code>convert_magnesium_unit</code> factors"),
        ("<script>alert(1)</script> **x**", "&lt;script&gt;alert(1)&lt;/script&gt; <strong>x</strong>"),
        ("2 * 3 * 4", "2 * 3 * 4"),
        ("`**not bold**`", "<code>**not bold**</code>"),
    ],
)
def test_markdown_subset_is_escaped_first(text, html):
    assert str(render_markdown(text)) == html


@pytest.mark.parametrize(
    "url, href",
    [
        ("nationalacademies.org/read/9956/chapter/28", "https://nationalacademies.org/read/9956/chapter/28"),
        ("http://hl7.org/fhir/ValueSet/route-codes", "http://hl7.org/fhir/ValueSet/route-codes"),
        ("javascript:alert(1)", None),
        (None, None),
    ],
)
def test_only_web_addresses_become_links(url, href):
    assert link_of(url) == href
