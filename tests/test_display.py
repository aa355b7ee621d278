"""Pure helpers of the CLI display."""

from quorum.cli.display import one_line


def test_one_line_flattens_newlines_and_cuts_at_a_word():
    text = "approved but acceptance tests failed:\n- tests/test_tail.py::test_zero: AssertionError\n- more"
    assert one_line(text, 200) == "approved but acceptance tests failed: - tests/test_tail.py::test_zero: AssertionError - more"
    cut = one_line(text, 50)
    assert cut == "approved but acceptance tests failed: -…" and len(cut) <= 50


def test_one_line_cuts_a_single_long_word():
    assert one_line("x" * 30, 10) == "x" * 9 + "…"
