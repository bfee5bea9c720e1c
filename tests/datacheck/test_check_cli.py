"""`convtrain data check` from the command line, `--fix-split` on a leaking folder, and
`convtrain train --exclude` recording what it left out."""

from __future__ import annotations

import json

import pytest
from PIL import Image

import convtrain
from convtrain.cli.app import main


def test_data_check_prints_one_line_per_check_and_writes_its_files(tiny_npz, tmp_path, capsys):
    assert main(["data", "check", f"npz:{tiny_npz}", "--split", "test", "--out", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines[1:5]] == ["files", "duplicates", "duplicates", "balance"]
    assert lines[5].startswith(f"wrote {tmp_path / 'check.json'}")
    assert lines[1].startswith("files: 96 images") and lines[4].startswith("balance: 4 classes")
    summary = json.loads((tmp_path / "check.json").read_text())
    assert summary["splits"] == {"train": 480, "test": 96} and summary["labels"] is None
    assert convtrain.check is not None and {"train/test", "test/test"} <= set(summary["duplicates"]["pairs"])


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--split", "nope"], "unknown split"),
        (["--labels", "--folds", "1"], "--folds"),
        (["--fix-split"], "folder datasets only"),
        (["--labels", "--model", "no-such-net"], "unknown model"),
        (["--labels", "--epochs", "0"], "epochs must be a number >= 1, got 0"),
    ],
)
def test_bad_flags_exit_2_with_one_line(tiny_npz, tmp_path, capsys, argv, words):
    assert main(["data", "check", f"npz:{tiny_npz}", "--out", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and "\n" not in err
    assert not (tmp_path / "check.json").exists()


def _image(path, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.effect_noise((12, 12), 40 + seed).convert("RGB").rotate(seed * 37).save(path)


def test_fix_split_moves_leaking_train_images_and_never_touches_the_originals(tmp_path):
    root = tmp_path / "photos"
    for split in ("train", "test"):
        for c in ("a", "b"):
            for k in range(5):
                _image(root / split / c / f"{k}.png", seed=hash((split, c, k)) % 97)
    leak = root / "test" / "b" / "leak.png"
    leak.write_bytes(
        (root / "train" / "a" / "2.png").read_bytes()
    )  # the same photo, filed under another class
    before = sorted((p, p.read_bytes()) for p in root.rglob("*.png"))
    out = tmp_path / "check"
    assert main(["data", "check", f"folder:{root}", "--fix-split", "--out", str(out)]) == 0
    assert sorted((p, p.read_bytes()) for p in root.rglob("*.png")) == before
    fixed = out / "split"
    assert not (fixed / "train" / "a" / "2.png").exists()
    moved = fixed / "test" / "a" / "2-from-train.png"  # test/a/2.png keeps its own name
    assert moved.resolve() == (root / "train" / "a" / "2.png").resolve()
    assert (
        len(list((fixed / "train").rglob("*.png"))) == 9 and len(list((fixed / "test").rglob("*.png"))) == 12
    )
    again = convtrain.check(f"folder:{fixed}", quiet=True)
    assert again.summary["duplicates"]["pairs"]["train/test"]["groups"] == 0


def test_train_exclude_leaves_images_out_and_records_them(tiny_npz, tmp_path):
    listed = tmp_path / "drop.txt"
    listed.write_text("# flagged by hand\n3\n17\n400\n")
    run = convtrain.train(
        dataset=f"npz:{tiny_npz}",
        model="lenet5",
        epochs=1,
        batch_size=64,
        val_split=0.1,
        exclude=str(listed),
        out=str(tmp_path / "run"),
        quiet=True,
        plots=False,
    )
    record = run.read_excluded()
    assert record["indices"] == [3, 17, 400] and record["train_images_before"] == 480
    train_idx, val_idx = run.read_split()
    assert len(train_idx) + len(val_idx) == 477
    assert run.config.exclude == str(listed)


def test_exclude_reads_the_train_rows_of_issues_csv(tmp_path):
    from convtrain.data.exclude import read_exclusions

    issues = tmp_path / "issues.csv"
    issues.write_text(
        "check,kind,split,index,path,given,suggested,confidence,group,detail\n"
        "labels,label,train,12,,3,5,0.99,,self_confidence 0.01\n"
        "duplicates,exact,train,40,,7,,1.0,0,copy of test[3] (7)\n"
        "labels,label,test,8,,1,7,0.9,,self_confidence 0.02\n"
        "files,unreadable,train,-1,/data/cat/x.png,,,,,broken\n"
    )
    assert read_exclusions(issues) == ({12, 40}, set())
    plain = tmp_path / "list.txt"
    plain.write_text("5\n\n# a comment\nphotos/cat/1.png\n")
    assert read_exclusions(plain) == ({5}, {"photos/cat/1.png"})
