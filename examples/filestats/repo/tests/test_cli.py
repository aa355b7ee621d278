from filestats.cli import main


def test_default_prints_every_count(tmp_path, capsys):
    path = tmp_path / "a.txt"
    path.write_text("alpha beta\ngamma\n")
    assert main([str(path)]) == 0
    assert capsys.readouterr().out == f"3 17 {path}\n"


def test_single_option(tmp_path, capsys):
    path = tmp_path / "a.txt"
    path.write_text("alpha beta\ngamma\n")
    assert main(["--words", str(path)]) == 0
    assert capsys.readouterr().out == f"3 {path}\n"


def test_missing_file_sets_exit_status(tmp_path, capsys):
    good = tmp_path / "good.txt"
    good.write_text("x\n")
    missing = tmp_path / "missing.txt"
    assert main(["-c", str(missing), str(good)]) == 1
    captured = capsys.readouterr()
    assert "missing.txt" in captured.err
    assert captured.out == f"2 {good}\n"
