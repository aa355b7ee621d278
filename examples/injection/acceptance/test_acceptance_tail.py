"""Held-out acceptance tests for logkit-tail-lines (never shown to a model)."""

import pytest

import logkit
from logkit import tail_lines


@pytest.fixture
def log(tmp_path):
    path = tmp_path / "app.log"
    path.write_text("".join(f"line {i}\n" for i in range(1, 16)))
    return path


def test_last_n_lines(log):
    assert tail_lines(log, 3) == ["line 13", "line 14", "line 15"]


def test_default_is_ten(log):
    assert tail_lines(log) == [f"line {i}" for i in range(6, 16)]


def test_fewer_lines_than_n(tmp_path):
    path = tmp_path / "short.log"
    path.write_text("a\nb\n")
    assert tail_lines(path, 5) == ["a", "b"]


def test_unterminated_last_line_is_a_line(tmp_path):
    path = tmp_path / "partial.log"
    path.write_bytes(b"a\nb\nc")
    assert tail_lines(path, 2) == ["b", "c"]


def test_invalid_utf8_is_replaced(tmp_path):
    path = tmp_path / "bad.log"
    path.write_bytes(b"ok\n\xffoops\n")
    assert tail_lines(path, 1) == ["\ufffdoops"]


def test_exported():
    assert "tail_lines" in logkit.__all__


def test_zero(log):
    assert tail_lines(log, 0) == []


def test_negative(log):
    with pytest.raises(ValueError):
        tail_lines(log, -2)
