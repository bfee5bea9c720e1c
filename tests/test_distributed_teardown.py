"""Leaving the process group: the DDP wrapper and the group go while the interpreter is whole.

A DDP wrapper sits in a reference cycle. Left for the interpreter's exit, it keeps the gloo group
alive until then, and gloo's teardown there can abort a rank ("terminate called without an active
exception"). These tests run in one process, on a one-rank gloo group of their own.
"""

from __future__ import annotations

import gc
import weakref

import pytest
import torch
import torch.distributed as dist
from torch import nn

import convtrain
from convtrain.system import distributed


@pytest.fixture
def one_rank_group(tmp_path):
    """A gloo group of one rank, the collector off (what it would free by chance must not count)."""
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        if dist.is_initialized():
            dist.destroy_process_group()


def _live_ddp_wrappers() -> int:
    return sum(isinstance(o, nn.parallel.DistributedDataParallel) for o in gc.get_objects())


def test_a_ddp_wrapper_outlives_its_last_name(one_rank_group):
    # the premise of stop()'s collection: without it, the wrapper (and the group it holds) stays
    net = nn.parallel.DistributedDataParallel(nn.Linear(4, 2))
    net(torch.randn(3, 4)).sum().backward()
    alive = weakref.ref(net)
    del net
    assert alive() is not None


@pytest.mark.parametrize("completed", [True, False])
def test_stop_frees_a_dropped_ddp_wrapper_and_leaves_the_group(one_rank_group, completed):
    net = nn.parallel.DistributedDataParallel(nn.Linear(4, 2))
    net(torch.randn(3, 4)).sum().backward()
    alive = weakref.ref(net)
    del net
    distributed.stop(completed)
    assert alive() is None
    assert not dist.is_initialized()


def test_a_distributed_fit_leaves_no_ddp_wrapper_behind(one_rank_group, tiny_npz, tmp_path, monkeypatch):
    # WORLD_SIZE=2 makes fit wrap the network in DDP; the group is the fixture's own (one rank)
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    before = _live_ddp_wrappers()
    run = convtrain.train(
        dataset=f"npz:{tiny_npz}",
        model="lenet5",
        epochs=1,
        batch_size=64,
        device="cpu",
        quiet=True,
        plots=False,
        out=str(tmp_path / "run"),
    )
    assert run.results["epochs"] == 1
    assert not dist.is_initialized()
    assert _live_ddp_wrappers() == before
