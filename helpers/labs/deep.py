"""Checks for Lab 12 · Deep learning (chapter 12) on the 8x8 handwritten digits.

The lab's tasks: turn the digit frames into the arrays PyTorch trains on (pixels scaled to 0-1), define a small
network of one's own, write its training loop, and measure its accuracy on the held-out digits. The checks run
the learner's network on the lab's test images (the split of chapter 12), so they judge what the network does,
never the code that built it: an activation written as a module or as ``F.relu`` in ``forward`` passes alike, and
the test images are fed in the form the learner's network takes (``x_test``, pixels / 16 or raw counts for a
network that scales them itself), checked against the test frame, so no network gets its pixels scaled twice.
"""

from __future__ import annotations

import functools
import numbers
from typing import TYPE_CHECKING, Any

import numpy as np

from helpers.labs import Wrong, active_spark, check, require

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import SparkSession

#: The 64 pixel columns, row by row (``pixel_{8*row+col}``), as chapter 12 names them.
PIXELS = [f"pixel_{i}" for i in range(64)]
#: The largest pixel value (ink dots in a 4x4 block); the lab's networks take pixels divided by it.
PIXEL_MAX = 16.0
#: Chapter 12's convolutional network reaches 0.978 test accuracy after 20 epochs; a small fully connected
#: network trained for 10 epochs as the lab asks reaches about 0.96. A network that learned anything is far above
#: this; an untrained one scores about 0.1.
ACCURACY_LIMIT = 0.93
#: The most weights the lab's "small" network may have (chapter 12's CNN: 18,346).
MAX_WEIGHTS = 50_000


@functools.cache
def _frames() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    from helpers.datasets import load
    from helpers.splits import hash_split

    columns = [*PIXELS, "label"]
    train_all, test = hash_split(load("digits", active_spark()), test_fraction=0.2, keys=columns)
    train, valid = hash_split(train_all, test_fraction=0.2, keys=columns, seed=7)
    return tuple(f.toPandas().sort_values(columns, ignore_index=True) for f in (train, valid, test))  # type: ignore


def digit_frames(spark: SparkSession) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(train, validation, test) digits as pandas frames: chapter 12's hash split (1,168 / 270 / 359 images),
    each sorted on its pixels so that the row order does not depend on Spark's partitioning."""
    del spark  # the active session is used; the argument makes the dependency visible in the notebook
    return _frames()


def _pixels(frame: pd.DataFrame, scale: float) -> np.ndarray:
    return frame[PIXELS].to_numpy(dtype=np.float32) * np.float32(scale)


def _input_scale(x_test: Any) -> float:
    """The factor the learner applied to the test frame's pixels to get ``x_test``: 1/16 (the lab's task) or 1
    (raw counts, for a network that scales inside ``forward`` like chapter 12's ``DigitNet``)."""
    test = _frames()[2]
    require(isinstance(x_test, np.ndarray), f"x_test should be a NumPy array, not {type(x_test).__name__}")
    require(x_test.shape == (len(test), len(PIXELS)),
            f"x_test has shape {x_test.shape}, expected {(len(test), len(PIXELS))}: the test frame's 64 pixel "
            "columns, one row per image, in test_pd's order")
    for scale in (1 / PIXEL_MAX, 1.0):
        if np.allclose(x_test, _pixels(test, scale), atol=1e-6):
            return scale
    raise Wrong("x_test is neither test_pd's pixels / 16 nor its raw pixels, in test_pd's order — build it like "
                "x_train, from test_pd")


def _logits(net: Any, pixels: np.ndarray) -> np.ndarray:
    import torch

    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            out = net(torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32)))
    finally:
        net.train(was_training)
    return out.detach().cpu().numpy()


def _require_module(net: Any) -> None:
    from torch import nn

    require(isinstance(net, nn.Module), f"net should be a PyTorch network (an nn.Module such as nn.Sequential), "
                                        f"not {type(net).__name__}")


@check("Arrays: training pixels scaled to 0–1 as float32, labels as int64")
def test_arrays(x_train: np.ndarray, y_train: np.ndarray) -> str:
    """``x_train``: the training frame's 64 pixel columns divided by 16, float32, shape (n, 64), in the frame's
    row order; ``y_train``: its ``label`` column as int64."""
    train = _frames()[0]
    require(isinstance(x_train, np.ndarray) and isinstance(y_train, np.ndarray),
            f"x_train and y_train should be NumPy arrays (`.to_numpy()`), not {type(x_train).__name__} and "
            f"{type(y_train).__name__}")
    require(x_train.ndim == 2 and x_train.shape[1] != len(PIXELS) + 1,
            f"x_train has shape {x_train.shape}: 65 columns means the label is among the pixels — select only "
            "the 64 columns PIXELS")
    require(x_train.shape == (len(train), len(PIXELS)),
            f"x_train has shape {x_train.shape}, expected {(len(train), len(PIXELS))}: one row per training "
            "image, one column per pixel (train_pd[PIXELS])")
    require(x_train.dtype == np.float32, f"x_train is {x_train.dtype}: PyTorch's layers hold float32 weights and "
                                         "refuse float64 input — `.astype(np.float32)`")
    require(float(x_train.max()) <= 1.0, f"the largest pixel is {x_train.max():g}: scale the pixels to 0–1 by "
                                         f"dividing by {PIXEL_MAX:g} (lab.PIXEL_MAX)")
    expected = train[PIXELS].to_numpy(dtype=np.float32) / np.float32(PIXEL_MAX)
    require(np.allclose(x_train, expected, atol=1e-6), "x_train's values differ from train_pd's pixels / 16 — keep "
                                                       "the rows in train_pd's order")
    require(y_train.shape == (len(train),), f"y_train has shape {y_train.shape}, expected ({len(train)},)")
    require(y_train.dtype == np.int64, f"y_train is {y_train.dtype}: cross_entropy needs the class indices as "
                                       "int64 (`.astype(np.int64)`)")
    require(np.array_equal(y_train, train["label"].to_numpy()), "y_train is not train_pd's label column, in order")
    return f"x_train {x_train.shape} float32 in [0, 1], y_train {y_train.shape} int64"


@check("Network: 64 pixels in, 10 logits out, with a non-linearity")
def test_network(net: Any) -> str:
    """``net``: a PyTorch module that maps a (n, 64) float32 batch to (n, 10) logits (no softmax at the end),
    non-linear (an activation between its layers, as a module such as ``nn.ReLU()`` or a call such as
    ``F.relu`` in ``forward``) and with at most ``MAX_WEIGHTS`` weights. The check judges what the network
    computes on the lab's test images, not how it is written."""
    import torch

    _require_module(net)
    pixels = _pixels(_frames()[2], 1 / PIXEL_MAX)
    out = _logits(net, pixels[:32])
    require(out.shape == (32, 10), f"a batch of 32 images gives an output of shape {tuple(out.shape)}; the network "
                                   "should end with 10 outputs, one logit per digit (nn.Linear(..., 10))")
    require(np.isfinite(out).all(), "the network outputs NaN or infinite values: lower the learning rate and "
                                    "rebuild the network")
    # Softmax outputs are probabilities: every row in [0, 1] and summing to 1. Logits almost never are.
    require(not (np.all((out >= 0) & (out <= 1)) and np.allclose(out.sum(axis=1), 1.0, atol=1e-4)),
            "the network's outputs are probabilities (each row sums to 1): it ends with a softmax, but "
            "F.cross_entropy applies one itself — end with the last nn.Linear and return its logits")
    # An affine map f satisfies f((a + b) / 2) = (f(a) + f(b)) / 2 for every pair of inputs; a network with a
    # non-linearity between its layers does not, for some pair of real images.
    first, second = pixels[:16], pixels[16:32]
    middle = _logits(net, (first + second) / np.float32(2))
    average = (out[:16] + out[16:32]) / 2
    scale = float(np.abs(out).max()) or 1.0
    require(float(np.abs(middle - average).max()) > 1e-4 * scale,
            "the network is linear: without an activation between the layers a stack of Linear layers collapses "
            "into one linear model — put nn.ReLU() between them (or call F.relu in forward)")
    weights = sum(p.numel() for p in net.parameters() if p.requires_grad)
    require(0 < weights <= MAX_WEIGHTS, f"{weights:,} weights: keep the network small (at most {MAX_WEIGHTS:,}; "
                                        "e.g. 64 → 64 → 10 has 4,810)")
    require(all(torch.isfinite(p).all() for p in net.parameters()), "some weights are NaN or infinite: lower the "
                                                                     "learning rate and rebuild the network")
    return f"{weights:,} weights, 64 → 10 logits, non-linear"


@check("Training: the network reads the held-out digits")
def test_training(net: Any, x_test: np.ndarray) -> str:
    """``net``: the trained network; ``x_test``: the test images as ``net`` takes them — the pixels / 16 of Task 1,
    or the raw pixels for a network that scales inside ``forward`` (chapter 12's ``DigitNet``). The check scores
    ``net`` on them against the test labels."""
    _require_module(net)
    scale = _input_scale(x_test)
    labels = _frames()[2]["label"].to_numpy()
    out = _logits(net, x_test)
    require(out.ndim == 2 and out.shape[1] == 10, f"the network outputs shape {tuple(out.shape)}, not (n, 10)")
    require(np.isfinite(out).all(), "the network outputs NaN: the training diverged — lower the learning rate")
    accuracy = float((out.argmax(1) == labels).mean())
    if accuracy < ACCURACY_LIMIT:
        other = "raw" if scale != 1.0 else "divided by 16"
        other_accuracy = float((_logits(net, _pixels(_frames()[2], 1.0 if scale != 1.0 else 1 / PIXEL_MAX)).argmax(1)
                                == labels).mean())
        require(other_accuracy < ACCURACY_LIMIT,
                f"test accuracy {accuracy:.3f} on x_test, but {other_accuracy:.3f} on the test pixels {other}: the "
                f"network was trained on pixels {other}, so pass x_test in that form — a network that divides by 16 "
                "in forward must get raw pixels, or they are scaled twice (and scaled once, never twice, in "
                "training too)")
    require(accuracy > 0.2, f"test accuracy {accuracy:.3f}: about what guessing scores, so the weights barely moved "
                            "— does each step call optimiser.zero_grad(), loss.backward() and optimiser.step(), on "
                            "this `net`'s parameters? (And does the network get its pixels scaled once, not twice?)")
    require(accuracy >= ACCURACY_LIMIT,
            f"test accuracy {accuracy:.3f} is below {ACCURACY_LIMIT}: train longer (10 epochs of batches of 64), "
            "with a learning rate around 0.1 and momentum 0.9, and shuffle the batches every epoch (chapter 12's "
            "CNN reaches 0.978)")
    return f"test accuracy {accuracy:.3f} (limit {ACCURACY_LIMIT}; chapter 12's CNN: 0.978)"


@check("Test accuracy and mistakes, measured on the test images")
def test_accuracy(net: Any, x_test: np.ndarray, test_accuracy: float, mistakes: int) -> str:
    """``test_accuracy``: the share of the 359 test images ``net`` classifies right (a fraction, not a percentage);
    ``mistakes``: how many it gets wrong. ``x_test``: the test images as ``net`` takes them (as in
    ``test_training``)."""
    _require_module(net)
    require(isinstance(test_accuracy, numbers.Real), f"test_accuracy should be a number, not "
                                                     f"{type(test_accuracy).__name__} (use float(...))")
    require(isinstance(mistakes, numbers.Integral), f"mistakes should be an int, not {type(mistakes).__name__}")
    scale = _input_scale(x_test)
    train, _, test = _frames()
    labels = test["label"].to_numpy()
    predictions = _logits(net, x_test).argmax(1)
    actual = float((predictions == labels).mean())
    wrong = int((predictions != labels).sum())
    require(test_accuracy <= 1.0, f"{test_accuracy} is a percentage: give the accuracy as a fraction between 0 and 1")
    if not np.isclose(test_accuracy, actual, atol=1e-4):
        train_predictions = _logits(net, _pixels(train, scale)).argmax(1)
        train_accuracy = float((train_predictions == train["label"].to_numpy()).mean())
        require(not np.isclose(test_accuracy, train_accuracy, atol=1e-4),
                f"{test_accuracy:.4f} is the accuracy on the TRAINING images; score x_test against y_test")
    require(np.isclose(test_accuracy, actual, atol=1e-4),
            f"test_accuracy is {test_accuracy:.4f} but the network classifies {actual:.4f} of the test images right "
            "— predict with net(torch.from_numpy(x_test)).argmax(1) in eval mode and compare with y_test")
    require(int(mistakes) == wrong, f"mistakes is {mistakes}, but the network gets {wrong} of the {len(labels)} test "
                                    "images wrong")
    return f"test accuracy {actual:.3f}: {wrong} of {len(labels)} digits wrong"
