from __future__ import annotations

import logging
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DistributedSampler

from helpers import deep

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A small, fixed slice of the real dataset: 300 training and 100 validation images."""
    from helpers.datasets import load_pandas

    x, y = deep.arrays(load_pandas("digits"))
    return x[:300], y[:300], x[300:400], y[300:400]


SMALL = deep.TrainConfig(epochs=6, batch_size=32)


def test_arrays_gives_float32_pixels_and_int64_labels() -> None:
    frame = pd.DataFrame({**{p: [i % 17, 16 - i % 17] for i, p in enumerate(deep.PIXELS)}, "label": [3, 7]})
    x, y = deep.arrays(frame)
    assert x.shape == (2, 64) and x.dtype == np.float32 and y.dtype == np.int64
    assert x[0, 20] == 3.0 and y.tolist() == [3, 7]


def test_the_network_maps_64_pixels_to_10_logits_for_any_batch_size() -> None:
    net = deep.DigitNet().eval()
    for n in (1, 5):
        assert net(torch.zeros(n, 64)).shape == (n, deep.CLASSES)
    # conv1 8*(9+1) + conv2 16*(8*9+1) + fc1 (16*16+1)*64 + fc2 (64+1)*10
    assert deep.parameter_count(net) == 80 + 1168 + 16448 + 650


def test_the_network_scales_raw_pixels_itself() -> None:
    torch.manual_seed(0)
    net = deep.DigitNet().eval()
    raw = torch.randint(0, 17, (4, 64)).float()
    manual = net.conv1(raw.reshape(-1, 1, 8, 8) / 16.0)
    assert torch.allclose(manual, net.conv1(raw.reshape(-1, 1, 8, 8) / deep.PIXEL_MAX))
    assert not torch.allclose(net(raw), net(raw / 16.0))


@pytest.mark.parametrize("n, batch_size, world_size", [(101, 8, 2), (64, 16, 4), (10, 4, 3), (7, 64, 2)])
def test_shards_are_disjoint_cover_every_example_and_take_the_same_number_of_steps(n, batch_size, world_size) -> None:
    shards = [deep.shard_batches(n, batch_size, epoch=3, rank=r, world_size=world_size) for r in range(world_size)]
    assert len({len(batches) for batches in shards}) == 1
    everything = torch.cat([torch.cat(batches) for batches in shards]).tolist()
    assert sorted(everything) == list(range(n))
    # Step by step, the shards together are the global batch one process would take.
    single = deep.shard_batches(n, batch_size, epoch=3)
    for step, whole in enumerate(single):
        parts = torch.cat([batches[step] for batches in shards])
        assert sorted(parts.tolist()) == sorted(whole.tolist())


def test_shards_match_distributed_sampler_without_its_padding() -> None:
    n, batch_size, world_size = 101, 8, 2
    for epoch in (1, 2):
        for rank in range(world_size):
            sampler = DistributedSampler(range(n), num_replicas=world_size, rank=rank, shuffle=True, seed=42)
            sampler.set_epoch(epoch)
            mine = torch.cat(deep.shard_batches(n, batch_size, epoch, seed=42, rank=rank,
                                                world_size=world_size)).tolist()
            assert list(sampler)[:len(mine)] == mine


def test_each_epoch_shuffles_differently_and_reproducibly() -> None:
    first = torch.cat(deep.shard_batches(50, 10, epoch=1)).tolist()
    assert first == torch.cat(deep.shard_batches(50, 10, epoch=1)).tolist()
    assert first != torch.cat(deep.shard_batches(50, 10, epoch=2)).tolist()


def test_shard_batches_rejects_impossible_settings() -> None:
    with pytest.raises(ValueError, match="rank"):
        deep.shard_batches(10, 4, epoch=1, rank=2, world_size=2)
    with pytest.raises(ValueError, match="batch_size"):
        deep.shard_batches(10, 1, epoch=1, rank=0, world_size=2)


def test_device_and_backend_on_a_cpu_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert deep.pick_device(1) == torch.device("cpu")
    assert deep.backend_for(torch.device("cpu")) == "gloo"
    assert deep.backend_for(torch.device("cuda", 0)) == "nccl"


def test_device_on_a_gpu_machine_is_the_local_ranks_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert deep.pick_device(2) == torch.device("cuda", 2)
    assert deep.pick_device(5) == torch.device("cuda", 1)


def test_training_learns_is_reproducible_and_restores_global_settings(digits) -> None:
    x_train, y_train, x_valid, y_valid = digits
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    first = deep.train(x_train, y_train, x_valid, y_valid, SMALL)
    second = deep.train(x_train, y_train, x_valid, y_valid, SMALL)
    assert (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()) == (threads, deterministic)
    assert list(first.history.columns) == ["epoch", "train_loss", "valid_loss", "train_accuracy", "valid_accuracy"]
    assert first.history["epoch"].tolist() == [1, 2, 3, 4, 5, 6]
    assert first.history["train_loss"].iloc[-1] < first.history["train_loss"].iloc[0] < 2.4
    assert first.history["valid_accuracy"].iloc[-1] > 0.7
    pd.testing.assert_frame_equal(first.history, second.history)
    assert all(np.array_equal(first.state_dict[k], second.state_dict[k]) for k in first.state_dict)
    assert first.world_size == 1 and first.backend is None and first.device == "cpu"
    assert first.processes.loc[0, "examples per epoch"] == 300
    assert first.trajectory.shape == (6, deep.parameter_count(first.model()))
    flat = torch.nn.utils.parameters_to_vector(first.model().parameters()).detach().numpy()
    np.testing.assert_array_equal(first.trajectory[-1], flat)
    assert sorted(first.shards[0]) == list(range(300))


def test_result_model_has_the_trained_weights_and_pickles(digits) -> None:
    x_train, y_train, x_valid, y_valid = digits
    result = deep.train(x_train, y_train, x_valid, y_valid, deep.TrainConfig(epochs=1, batch_size=64))
    net = result.model()
    assert not net.training
    assert deep.weights_digest(net) == result.processes.loc[0, "weights digest"]
    loss, accuracy = deep.evaluate(net, torch.from_numpy(x_valid), torch.from_numpy(y_valid))
    assert result.history["valid_loss"].iloc[-1] == pytest.approx(loss)
    assert result.history["valid_accuracy"].iloc[-1] == pytest.approx(accuracy)
    again = pickle.loads(pickle.dumps(result))  # TorchDistributor ships the result back pickled
    assert deep.weights_digest(again.model()) == deep.weights_digest(net)


def test_two_ddp_processes_train_the_same_model_as_one(digits, tmp_path: Path) -> None:
    """The promise of the chapter: data-parallel training on shards gives the single-process model."""
    x_train, y_train, x_valid, y_valid = digits
    data = tmp_path / "data.pkl"
    data.write_bytes(pickle.dumps((x_train[:201], y_train[:201], x_valid, y_valid, SMALL)))
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(f"""
        import os, pickle
        from pyspark import cloudpickle
        from helpers import deep
        args = pickle.loads(open({str(data)!r}, "rb").read())
        result = deep.train(*args)
        with open({str(tmp_path)!r} + f"/rank{{os.environ['RANK']}}.pkl", "wb") as handle:
            cloudpickle.dump(result, handle)  # as TorchDistributor writes a process's return value
    """))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script)]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=240, cwd=ROOT,
                              env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    # The training processes' own messages come first; torchrun's summary of who failed comes last.
    assert finished.returncode == 0, finished.stderr[:3000] + "\n...\n" + finished.stderr[-1500:]
    written = [(tmp_path / f"rank{r}.pkl").read_bytes() for r in (0, 1)]
    # TorchDistributor's processes all write to one file: only identical bytes survive interleaved writes.
    assert written[0] == written[1]
    ranks = [pickle.loads(blob) for blob in written]
    single = deep.train(x_train[:201], y_train[:201], x_valid, y_valid, SMALL)

    for result in ranks:  # every process returns rank 0's result
        assert result.world_size == 2 and result.backend == "gloo"
        pd.testing.assert_frame_equal(result.history, ranks[0].history)
    processes = ranks[0].processes
    assert processes["examples per epoch"].tolist() == [101, 100]  # 201 examples: the last batch splits 5 + 4
    assert processes["weights digest"].nunique() == 1  # DDP kept the replicas bit-identical
    assert set(ranks[0].shards[0]).isdisjoint(ranks[0].shards[1])
    assert sorted(ranks[0].shards[0] + ranks[0].shards[1]) == list(range(201))
    # After one epoch the two differ only by the rounding of sums taken in another order ...
    assert np.abs(ranks[0].trajectory[0] - single.trajectory[0]).max() < 1e-6
    # ... and on this short run that stays small to the end.
    for name, weights in single.state_dict.items():
        np.testing.assert_allclose(ranks[0].state_dict[name], weights, rtol=0, atol=1e-5)
    pd.testing.assert_frame_equal(ranks[0].history, single.history, atol=1e-5, rtol=0)


def test_captured_output_keeps_prints_and_drops_distributor_info(capsys) -> None:
    logger = logging.getLogger("TorchDistributor")
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with deep.captured_output() as output:
            print("from a training process")
            logger.info("Started local training with 2 processes")
            logger.warning("num_processes was reset")
        logger.info("after the block")
    finally:
        logger.removeHandler(handler)
    assert output.getvalue() == "from a training process\n"
    assert capsys.readouterr().out == ""
    assert [r.getMessage() for r in records] == ["num_processes was reset", "after the block"]


def test_digit_grid_draws_one_image_per_row(plot_style) -> None:
    pixels = np.arange(3 * 64).reshape(3, 64) % 17
    fig = deep.digit_grid(pixels, ["a", "b", "c"], ncols=2, title="three digits")
    drawn = [ax for ax in fig.axes if ax.images]
    assert len(drawn) == 3 and len(fig.axes) == 4
    assert drawn[1].images[0].get_array().shape == (8, 8)
    assert [ax.get_title() for ax in drawn] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="titles"):
        deep.digit_grid(pixels, ["a"])
