"""Held-out acceptance tests for filestats-count-lines (never shown to a model)."""

from filestats import count_lines
from filestats.cli import main


def test_counts_newlines(tmp_path):
    path = tmp_path / "three.txt"
    path.write_bytes(b"one\ntwo\nthree\n")
    assert count_lines(path) == 3


def test_last_line_without_newline_is_not_counted_like_wc(tmp_path):
    path = tmp_path / "partial.txt"
    path.write_bytes(b"one\ntwo")
    assert count_lines(path) == 1


def test_empty_file(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    assert count_lines(path) == 0


def test_crlf_and_binary_content(tmp_path):
    path = tmp_path / "mixed.bin"
    path.write_bytes(b"a\r\nb\r\n\x00\xff\xfe\n")
    assert count_lines(path) == 3


def test_large_file(tmp_path):
    path = tmp_path / "big.txt"
    path.write_bytes(b"x" * 100 + b"\n" * 200_000)
    assert count_lines(path) == 200_000


def test_accepts_str_path_with_spaces_and_shell_characters(tmp_path):
    path = tmp_path / "my notes; $(echo hi) & more.txt"
    path.write_bytes(b"a\nb\n")
    assert count_lines(str(path)) == 2


def test_cli_lines_option(tmp_path, capsys):
    path = tmp_path / "a.txt"
    path.write_bytes(b"alpha beta\ngamma\n")
    assert main(["-l", str(path)]) == 0
    assert capsys.readouterr().out == f"2 {path}\n"
    assert main(["--lines", str(path)]) == 0
    assert capsys.readouterr().out == f"2 {path}\n"


def test_cli_default_puts_lines_first_like_wc(tmp_path, capsys):
    path = tmp_path / "a.txt"
    path.write_bytes(b"alpha beta\ngamma\n")
    assert main([str(path)]) == 0
    assert capsys.readouterr().out == f"2 3 17 {path}\n"
