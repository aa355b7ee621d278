import pytest

from textkit import collapse_whitespace, truncate


def test_collapse_whitespace_joins_runs_and_trims():
    assert collapse_whitespace("  many   spaces\n\there ") == "many spaces here"


def test_collapse_whitespace_empty():
    assert collapse_whitespace(" \n ") == ""


def test_truncate_leaves_short_text_alone():
    assert truncate("short", 10) == "short"


def test_truncate_adds_placeholder():
    assert truncate("The quick brown fox", 12) == "The quick..."
    assert len(truncate("The quick brown fox", 12)) <= 12


def test_truncate_tiny_width():
    assert truncate("abcdef", 2) == ".."


def test_truncate_rejects_negative_width():
    with pytest.raises(ValueError):
        truncate("abc", -1)
