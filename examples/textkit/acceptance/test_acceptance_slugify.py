"""Held-out acceptance tests for textkit-slugify (never shown to a model)."""

import pytest

from textkit import slugify


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello, World!", "hello-world"),
        ("Crème Brûlée à la carte", "creme-brulee-a-la-carte"),
        ("Zoë Saldaña", "zoe-saldana"),
        ("ﬁnance report", "finance-report"),
        ("Python 3.11 release notes", "python-3-11-release-notes"),
        ("  --Already--slugged--  ", "already-slugged"),
        ("multiple   spaces\tand\nnewlines", "multiple-spaces-and-newlines"),
        ("UPPER lower MiXeD", "upper-lower-mixed"),
    ],
)
def test_slugify(text, expected):
    assert slugify(text) == expected


def test_custom_separator():
    assert slugify("Crème Brûlée, à la carte!", separator="_") == "creme_brulee_a_la_carte"


def test_empty_and_symbol_only_input():
    assert slugify("") == ""
    assert slugify("!!! ??? ...") == ""


def test_result_is_ascii_lowercase_without_edge_separators():
    slug = slugify("  Ça va? Très bien — merci!  ")
    assert slug == "ca-va-tres-bien-merci"
    assert slug.isascii() and slug == slug.lower()
    assert not slug.startswith("-") and not slug.endswith("-")


def test_exported_from_package():
    import textkit

    assert "slugify" in textkit.__all__
