import pytest

from logkit import grep_lines, head_lines


@pytest.fixture
def log(tmp_path):
    path = tmp_path / "app.log"
    path.write_text("start\nGET /a 200\nGET /b 500\nPOST /c 201\nstop\n")
    return path


def test_head_lines(log):
    assert head_lines(log, 2) == ["start", "GET /a 200"]


def test_head_lines_zero_and_too_many(log):
    assert head_lines(log, 0) == []
    assert len(head_lines(log, 100)) == 5


def test_head_lines_rejects_negative(log):
    with pytest.raises(ValueError):
        head_lines(log, -1)


def test_grep_lines_numbers_from_one(log):
    assert grep_lines(log, r" 5\d\d$") == [(3, "GET /b 500")]


def test_invalid_utf8_is_replaced(tmp_path):
    path = tmp_path / "bad.log"
    path.write_bytes(b"ok\n\xffoops\n")
    assert head_lines(path) == ["ok", "\ufffdoops"]
