"""Deep learning on the 8x8 digits: a small convolutional network, and one training function that
trains it in this process or as one of several DistributedDataParallel processes.

The same function serves both, which is what ``pyspark.ml.torch.distributor.TorchDistributor``
needs: it pickles the function (cloudpickle: a notebook function works too), starts ``num_processes`` copies of it with
``torchrun`` and returns what the process of rank 0 returned::

    result = train(x_train, y_train, x_valid, y_valid)                           # one process
    result = TorchDistributor(num_processes=2, local_mode=True, use_gpu=False).run(
        train, x_train, y_train, x_valid, y_valid)                                # two processes

Under ``torchrun`` the function finds ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` in its environment,
joins the process group (``gloo`` on CPUs, ``nccl`` on GPUs), wraps the network in
``DistributedDataParallel`` and trains on its own shard of every batch. Each step the processes
average their gradients, so the model they train is the one a single process would train on the
whole batches — up to the order in which floating-point sums are taken, a last-bit difference that
long training runs can amplify.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import os
import pickle
import time
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: The 64 pixel columns of the ``digits`` dataset, row by row (``pixel_{8*row+col}``).
PIXELS: list[str] = [f"pixel_{i}" for i in range(64)]
#: Digits 0 to 9.
CLASSES: int = 10
#: The largest value a pixel takes (each is a count of "on" pixels in a 4x4 block).
PIXEL_MAX: float = 16.0


class DigitNet(nn.Module):
    """A small convolutional network: 64 raw pixel values (0-16, row by row) in, 10 logits out.

    Two 3x3 convolutions look at neighbouring pixels (the image keeps its 8x8 shape), a 2x2 max-pool
    halves it to 4x4, and two fully connected layers turn the feature maps into one score per digit.
    The scaling to 0-1 and the reshaping to an image happen inside ``forward``, so a logged model
    takes the dataset's columns as they are.
    """

    def __init__(self, channels: tuple[int, int] = (8, 16), hidden: int = 64) -> None:
        super().__init__()
        first, second = channels
        self.conv1 = nn.Conv2d(1, first, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(first, second, kernel_size=3, padding=1)
        self.fc1 = nn.Linear(second * 4 * 4, hidden)
        self.fc2 = nn.Linear(hidden, CLASSES)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.reshape(-1, 1, 8, 8) / PIXEL_MAX
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.fc1(x.flatten(1)))
        return self.fc2(x)


def parameter_count(model: nn.Module) -> int:
    """The number of trainable weights."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def arrays(frame: pd.DataFrame, label: str = "label") -> tuple[np.ndarray, np.ndarray]:
    """(pixels as float32 of shape (n, 64), labels as int64) from a pandas frame of the dataset."""
    return frame[PIXELS].to_numpy(dtype=np.float32), frame[label].to_numpy(dtype=np.int64)


@dataclass(frozen=True)
class TrainConfig:
    """How to train: ``batch_size`` is the *global* batch, shared out among the processes."""

    epochs: int = 20
    batch_size: int = 64
    learning_rate: float = 0.05
    momentum: float = 0.9
    seed: int = 42


@dataclass
class TrainResult:
    """What ``train`` returns: when distributed, rank 0's result, which every process returns."""

    # The trained weights as NumPy arrays, not tensors: a tensor's pickle names its storage by memory
    # address, which differs between processes, and every process must pickle this result to the same bytes.
    state_dict: dict[str, np.ndarray]
    history: pd.DataFrame  # one row per epoch: train/valid loss and accuracy
    world_size: int
    backend: str | None  # "gloo", "nccl" or None (one process)
    device: str
    processes: pd.DataFrame  # one row per process (index: rank): its shard and what it saw
    shards: dict[int, list[int]]  # rank -> the training examples (row positions) it got in epoch 1
    trajectory: np.ndarray  # (epochs, weights): every weight, flattened, at the end of each epoch
    seconds: float = field(default=0.0)

    def model(self) -> DigitNet:
        """A fresh ``DigitNet`` with the trained weights, in evaluation mode."""
        net = DigitNet()
        net.load_state_dict({name: torch.from_numpy(weights.copy()) for name, weights in self.state_dict.items()})
        return net.eval()


def shard_batches(n: int, batch_size: int, epoch: int, seed: int = 42, rank: int = 0,
                  world_size: int = 1) -> list[torch.Tensor]:
    """The example indices that process ``rank`` of ``world_size`` trains on, batch by batch, in ``epoch``.

    Every process draws the same permutation of ``range(n)`` (seeded with ``seed + epoch``) and cuts it
    into global batches of ``batch_size``; a process keeps every ``world_size``-th example of each batch,
    starting at its rank. Over an epoch the shards are disjoint and together hold every example once
    (with ``batch_size`` a multiple of ``world_size``, these are the shards, in the same order, that
    PyTorch's ``DistributedSampler`` deals out, less its padding to equal length), and
    every process takes the same number of steps, which ``DistributedDataParallel`` requires.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in 0..{world_size - 1}, not {rank}.")
    if batch_size < world_size:
        raise ValueError(f"batch_size ({batch_size}) must be at least world_size ({world_size}).")
    generator = torch.Generator().manual_seed(seed + epoch)
    order = torch.randperm(n, generator=generator)
    return [order[start:start + batch_size][rank::world_size] for start in range(0, n, batch_size)]


def pick_device(local_rank: int = 0) -> torch.device:
    """The device this process should train on: its own GPU (``cuda:LOCAL_RANK``) when there is one,
    else the CPU."""
    if torch.cuda.is_available():
        return torch.device(f"cuda:{local_rank % torch.cuda.device_count()}")
    return torch.device("cpu")


def backend_for(device: torch.device) -> str:
    """The ``torch.distributed`` backend for ``device``: NCCL between GPUs, Gloo between CPUs."""
    return "nccl" if device.type == "cuda" else "gloo"


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(mean cross-entropy loss, accuracy) of ``model`` on ``x``, ``y``."""
    was_training = model.training
    model.eval()
    logits = model(x)
    model.train(was_training)
    return float(F.cross_entropy(logits, y)), float((logits.argmax(1) == y).float().mean())


def train(x_train: np.ndarray, y_train: np.ndarray, x_valid: np.ndarray, y_valid: np.ndarray,
          config: TrainConfig = TrainConfig()) -> TrainResult:
    """Train a ``DigitNet`` with SGD and momentum on (``x_train``, ``y_train``), scoring both sets after
    every epoch.

    Run plainly, it trains in this process. Started by ``torchrun`` (``TorchDistributor`` does that) with
    ``WORLD_SIZE`` > 1, each process joins the process group, wraps the network in
    ``DistributedDataParallel`` and trains on its shard of each batch (``shard_batches``); its loss is
    scaled so that the gradients DDP averages equal the gradient of the mean loss over the whole batch.
    Every process returns the same result, that of rank 0, as an object unpickled from the same bytes:
    ``TorchDistributor`` in local mode has every process write its return value to one file, so the
    processes' pickles must be byte-identical.

    Training is deterministic: fixed seeds for the weights and the batch order, deterministic
    algorithms and one thread per process. The global PyTorch settings it changes are restored before
    it returns.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = pick_device(int(os.environ.get("LOCAL_RANK", "0")))
    distributed = world_size > 1
    backend = backend_for(device) if distributed else None
    if distributed:
        dist.init_process_group(backend=backend)

    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    started = time.perf_counter()
    try:
        torch.manual_seed(config.seed)
        net = DigitNet().to(device)
        model: nn.Module = net
        if distributed:
            # DDP copies rank 0's initial weights to every process, then averages the gradients of
            # each backward pass across the processes (an all-reduce) before the optimiser steps.
            model = DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
        optimiser = torch.optim.SGD(model.parameters(), lr=config.learning_rate, momentum=config.momentum)
        xt, yt = torch.from_numpy(x_train).to(device), torch.from_numpy(y_train).to(device)
        xv, yv = torch.from_numpy(x_valid).to(device), torch.from_numpy(y_valid).to(device)
        n = len(yt)
        history: list[dict[str, float]] = []
        trajectory: list[np.ndarray] = []
        shard_losses: list[float] = []
        first_shard: list[int] = []
        for epoch in range(1, config.epochs + 1):
            model.train()
            batches = shard_batches(n, config.batch_size, epoch, config.seed, rank, world_size)
            shard_loss, shard_examples = 0.0, 0
            for step, batch in enumerate(batches):
                # This step's global batch holds batch_size examples (fewer in the last step). DDP
                # averages the processes' gradients, so scaling the sum of this shard's losses by
                # world_size / global batch size makes that average the gradient of the whole batch's
                # mean loss: the gradient a single process would compute.
                global_size = min(config.batch_size, n - step * config.batch_size)
                index = batch.to(device)
                losses = F.cross_entropy(model(xt[index]), yt[index], reduction="none")
                optimiser.zero_grad()
                (losses.sum() * (world_size / global_size)).backward()
                optimiser.step()
                shard_loss += float(losses.detach().sum())
                shard_examples += len(batch)
            shard_losses.append(shard_loss / max(shard_examples, 1))
            if epoch == 1:
                first_shard = torch.cat(batches).tolist()
            if rank == 0:
                trajectory.append(nn.utils.parameters_to_vector(net.parameters()).detach().cpu().numpy().copy())
                train_loss, train_accuracy = evaluate(net, xt, yt)
                valid_loss, valid_accuracy = evaluate(net, xv, yv)
                history.append({"epoch": epoch, "train_loss": train_loss, "valid_loss": valid_loss,
                                "train_accuracy": train_accuracy, "valid_accuracy": valid_accuracy})
        mine = {"rank": rank, "device": str(device), "examples per epoch": shard_examples,
                "steps per epoch": len(batches), "first examples of epoch 1": first_shard[:4],
                "loss on its shard, epoch 1": shard_losses[0],
                f"loss on its shard, epoch {config.epochs}": shard_losses[-1],
                "weights digest": weights_digest(net), "shard": first_shard}
        gathered: list[Any] = [None] * world_size
        if distributed:
            dist.all_gather_object(gathered, mine)
        else:
            gathered = [mine]
        result: TrainResult | None = None
        if rank == 0:
            state = {name: tensor.detach().cpu().numpy().copy() for name, tensor in net.state_dict().items()}
            shards = {int(row["rank"]): row.pop("shard") for row in gathered}
            result = TrainResult(state, pd.DataFrame(history), world_size, backend, device.type,
                                 pd.DataFrame(gathered).set_index("rank"), shards, np.stack(trajectory),
                                 time.perf_counter() - started)
        if distributed:
            # TorchDistributor (local mode) has every process pickle its return value into the same
            # file, and processes that finish together interleave their writes. So every process,
            # rank 0 included, returns an object unpickled from the same bytes: their pickles are then
            # byte-identical, and the file is right however the writes interleave. (Rank 0 returning
            # its own object instead, measured here: one weight of the returned trajectory read NaN.)
            box = [pickle.dumps(result) if rank == 0 else None]
            dist.broadcast_object_list(box, src=0)
            result = pickle.loads(box[0])
            # Without this barrier rank 0 could tear the group down while rank 1 was still receiving
            # the broadcast; measured here, about one run in four then aborted at exit ("terminate
            # called without an active exception"). Only on success: after an error it would wait.
            dist.barrier()
        assert result is not None
        return result
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
        if distributed:
            dist.destroy_process_group()


@contextmanager
def captured_output() -> Iterator[io.StringIO]:
    """Collect what ``TorchDistributor.run`` prints (its training processes' output, copied to this
    process's stdout line by line, interleaved as they arrive) into the ``StringIO`` it yields, and
    drop its INFO messages ("Started local training ..."), so a notebook shows only what it chooses."""
    logger = logging.getLogger("TorchDistributor")

    def warnings_only(record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING

    buffer = io.StringIO()
    logger.addFilter(warnings_only)
    try:
        with redirect_stdout(buffer):
            yield buffer
    finally:
        logger.removeFilter(warnings_only)


def weights_digest(model: nn.Module) -> str:
    """A short fingerprint of a model's weights: equal digests mean bit-identical weights."""
    digest = hashlib.sha256()
    for tensor in model.state_dict().values():
        digest.update(tensor.detach().cpu().numpy().tobytes())
    return digest.hexdigest()[:12]


def digit_grid(pixels: np.ndarray, titles: list[str], ncols: int = 10, title: str = "",
               cell: float = 1.15) -> Figure:
    """Digits drawn as 8x8 images (dark = more ink), one per row of ``pixels`` (shape (n, 64)), each with
    its title below it, ``ncols`` to a row."""
    import matplotlib.pyplot as plt

    images = np.asarray(pixels, dtype=float).reshape(-1, 8, 8)
    if len(images) != len(titles):
        raise ValueError(f"{len(images)} images but {len(titles)} titles.")
    if len(images) == 0:
        raise ValueError("digit_grid needs at least one image.")
    ncols = min(ncols, len(images))
    nrows = math.ceil(len(images) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(cell * ncols, (cell + 0.35) * nrows + (0.4 if title else 0)),
                             squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, image, text in zip(axes.flat, images, titles, strict=False):
        ax.imshow(image, cmap="gray_r", vmin=0, vmax=PIXEL_MAX, interpolation="nearest")
        ax.set_title(text, fontsize=9, fontweight="normal", y=-0.32)
    if title:
        fig.suptitle(title, fontweight="bold")
    return fig
