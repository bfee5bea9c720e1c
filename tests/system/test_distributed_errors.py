"""--nproc: the processes' one-line errors and warnings, each said once."""

from __future__ import annotations

from convtrain.cli.app import _one_line_warning
from convtrain.system import distributed


def test_the_launcher_says_each_different_refusal_once_in_process_order(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(distributed.ERRORS_ENV, str(tmp_path))
    monkeypatch.setenv("WORLD_SIZE", "3")
    for rank, line in ((2, "error: other"), (1, "error: same"), (0, "error: same")):
        monkeypatch.setenv("RANK", str(rank))
        distributed.refusal(line)
    assert capsys.readouterr().err == ""  # written for the launcher, not printed by the processes
    distributed._say_refusals(tmp_path)
    assert capsys.readouterr().err == "error: same\nerror: other\n"


def test_alone_or_without_the_launchers_folder_a_process_says_its_error_itself(tmp_path, monkeypatch, capsys):
    distributed.refusal("error: alone")  # no launcher
    monkeypatch.setenv(distributed.ERRORS_ENV, str(tmp_path / "gone"))
    monkeypatch.setenv("WORLD_SIZE", "2")
    distributed.refusal("error: the folder is gone")
    assert capsys.readouterr().err == "error: alone\nerror: the folder is gone\n"


def test_a_warning_is_said_by_the_first_process_only(monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    for rank in ("1", "0"):
        monkeypatch.setenv("RANK", rank)
        _one_line_warning(UserWarning(f"read by process {rank}"), UserWarning, "x.py", 1)
    assert capsys.readouterr().err == "warning: read by process 0\n"
