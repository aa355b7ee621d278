from filestats import count_bytes, count_words


def test_count_words(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("one two\nthree\n\n  four  five six\n")
    assert count_words(path) == 6


def test_count_words_empty_file(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_text("")
    assert count_words(path) == 0


def test_count_bytes_counts_encoded_size(tmp_path):
    path = tmp_path / "utf8.txt"
    path.write_text("héllo\n", encoding="utf-8")
    assert count_bytes(path) == 7
