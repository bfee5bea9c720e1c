"""The --log-every lines: each averages the steps since the previous line, not the epoch so far."""

from __future__ import annotations

from convtrain.system.progress import Progress


def test_log_lines_average_the_last_window_of_steps(capsys):
    progress = Progress(total=4, title="epoch 1/1", enabled=False, log_every=2)
    # steps 1-2: 20 images, loss 1.0 each, 10 right; steps 3-4: 20 images, loss 0.5 each, 20 right
    for step, loss_sum, correct, images in [
        (1, 10.0, 5, 10),
        (2, 20.0, 10, 20),
        (3, 25.0, 20, 30),
        (4, 30.0, 30, 40),
    ]:
        if progress.wants_update(step):
            progress.update(step, loss_sum, correct, images)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert "step 2/4  loss 1.0000  acc 50.00%  (last 2 steps)" in lines[0]
    assert "step 4/4  loss 0.5000  acc 100.00%  (last 2 steps)" in lines[1]  # not the epoch's 0.75 / 75%


def test_no_lines_without_log_every(capsys):
    progress = Progress(total=3, title="epoch 1/1", enabled=False, log_every=0)
    assert not any(progress.wants_update(step) for step in (1, 2, 3))
    assert capsys.readouterr().out == ""
