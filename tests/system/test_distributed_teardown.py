"""Leaving the process group: the DDP wrapper and the group go while the interpreter is whole.

The first DDP wrapper a process makes is held by a reference cycle that only the collector frees.
Left alone, it keeps the gloo group alive until the collector runs, perhaps during the interpreter's
exit, and gloo's teardown there can abort a rank ("terminate called without an active exception").
Whether a wrapper is held so depends on what the process did before, so the check runs in a fresh
process of its own, on a one-rank gloo group it makes itself. Without distributed.stop's collection
it finds the wrapper still alive after fit.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

CHECK = textwrap.dedent(
    """
    import gc, os, sys
    import torch.distributed as dist
    from torch import nn
    import convtrain

    def live_wrappers():
        return sum(isinstance(o, nn.parallel.DistributedDataParallel) for o in gc.get_objects())

    gc.disable()  # what the collector would free by chance must not count
    npz, out, store = sys.argv[1:4]
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=0, world_size=1)
    os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="2")  # fit wraps the network in DDP
    run = convtrain.train(
        dataset=f"npz:{npz}", model="lenet5", epochs=1, batch_size=64, device="cpu",
        quiet=True, plots=False, out=out,
    )
    print("epochs", run.results["epochs"], "initialized", dist.is_initialized(), "wrappers", live_wrappers())
    """
)


def test_a_distributed_fit_leaves_no_ddp_wrapper_or_group_behind(tiny_npz, tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", CHECK, str(tiny_npz), str(tmp_path / "run"), str(tmp_path / "store")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-6:] == ["epochs", "1", "initialized", "False", "wrappers", "0"], done.stdout
