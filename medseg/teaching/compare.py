"""Train networks on a :class:`~medseg.teaching.slices.SliceSet` with one budget and score them.

This is teaching code for comparing architectures in a notebook, not a bundle training path: it has
no validation, checkpoints or schedules. Every network gets the same data, the same number of steps,
the same batches (drawn from one seed) and the same loss, MONAI's ``DiceCELoss``.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import astuple, dataclass

import numpy as np
import torch
from monai.losses import DiceCELoss
from monai.metrics import DiceMetric, HausdorffDistanceMetric, SurfaceDiceMetric
from monai.networks.utils import one_hot
from torch import nn

from medseg.teaching.architectures import parameter_count
from medseg.teaching.slices import SliceSet

CLASSES = ("liver", "tumour")  # labels 1 and 2; label 0 is background


@dataclass(frozen=True)
class Budget:
    """What every network gets.

    Args:
        steps: optimiser steps.
        batch_size: slices per step.
        learning_rate: Adam's learning rate.
        seed: seeds the initial weights and the order of the batches.
    """

    steps: int = 800
    batch_size: int = 8
    learning_rate: float = 3e-3
    seed: int = 0


def tumour_balanced_weights(labels: np.ndarray) -> torch.Tensor:
    """``(N,)`` sampling weights under which half the draws are slices that show tumour (when any do)."""
    shows_tumour = torch.from_numpy((labels == len(CLASSES)).reshape(len(labels), -1).any(axis=1))
    counts = torch.bincount(shows_tumour.long(), minlength=2).clamp(min=1)
    return 1.0 / counts[shows_tumour.long()].double()


def train_network(network: nn.Module, data: SliceSet, budget: Budget) -> float:
    """Train ``network`` in place on random batches of ``data``; returns the seconds it took.

    Tumours are rare, so batches are drawn with :func:`tumour_balanced_weights`; each batch is mirrored at
    random along each axis, so that the networks learn what a tumour looks like rather than where the
    training tumours were.
    """
    generator = torch.Generator().manual_seed(budget.seed)
    images, labels = torch.from_numpy(data.images), torch.from_numpy(data.labels)
    weights = tumour_balanced_weights(data.labels)
    loss_function = DiceCELoss(to_onehot_y=True, softmax=True, batch=True)
    optimiser = torch.optim.Adam(network.parameters(), lr=budget.learning_rate)
    network.train()
    start = time.perf_counter()
    for _ in range(budget.steps):
        batch = torch.multinomial(weights, budget.batch_size, replacement=True, generator=generator)
        flips = [axis for axis in (2, 3) if torch.rand(1, generator=generator) < 0.5]
        optimiser.zero_grad()
        loss = loss_function(network(images[batch].flip(flips)), labels[batch].flip(flips))
        loss.backward()
        optimiser.step()
    return time.perf_counter() - start


@torch.no_grad()
def predict(network: nn.Module, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Label maps ``(N, 1, H, W)`` int64 for images ``(N, 1, H, W)``: the argmax of the network's output."""
    network.eval()
    batches = torch.from_numpy(images).split(batch_size)
    return torch.cat([network(batch).argmax(dim=1, keepdim=True) for batch in batches]).numpy()


@dataclass(frozen=True)
class Scores:
    """Mean scores of one class over the slices whose reference shows it.

    Args:
        dice: Dice coefficient.
        hd95_mm: 95th-percentile Hausdorff distance in mm; a slice where the class was missed
            entirely counts as the slice's diagonal, the worst distance there is.
        surface_dice: fraction of both boundaries within ``tolerance_mm`` of the other.
    """

    dice: float
    hd95_mm: float
    surface_dice: float


def score(prediction: np.ndarray, reference: np.ndarray, spacing: np.ndarray, tolerance_mm: float) -> dict[str, Scores]:
    """Dice, HD95 and surface Dice of each class in :data:`CLASSES`, computed with MONAI.

    Args:
        prediction: ``(N, 1, H, W)`` label maps.
        reference: ``(N, 1, H, W)`` label maps.
        spacing: ``(N, 2)`` pixel size in mm.
        tolerance_mm: surface Dice tolerance.
    """
    classes = len(CLASSES) + 1
    pred, ref = (one_hot(torch.from_numpy(labels), num_classes=classes) for labels in (prediction, reference))
    pixel_spacing = [list(map(float, s)) for s in spacing]
    dice = DiceMetric(include_background=False, reduction="none", ignore_empty=True)(pred, ref)
    with warnings.catch_warnings():  # empty masks are expected here, and handled below
        warnings.simplefilter("ignore")
        hd95 = HausdorffDistanceMetric(include_background=False, percentile=95, reduction="none")(
            pred, ref, spacing=pixel_spacing
        )
        surface = SurfaceDiceMetric([tolerance_mm] * len(CLASSES), include_background=False, reduction="none")(
            pred, ref, spacing=pixel_spacing
        )
    # reduction="none": one tensor each
    assert isinstance(dice, torch.Tensor) and isinstance(hd95, torch.Tensor) and isinstance(surface, torch.Tensor)
    present = ref[:, 1:].flatten(2).any(dim=2)  # (N, classes - 1)
    missed = present & ~pred[:, 1:].flatten(2).any(dim=2)
    diagonal = torch.from_numpy(np.linalg.norm(spacing * prediction.shape[2:], axis=1)).float()[:, None]
    hd95 = torch.where(missed, diagonal.expand_as(hd95), hd95)
    return {
        name: Scores(*(_mean(values[:, c][present[:, c]]) for values in (dice, hd95, surface)))
        for c, name in enumerate(CLASSES)
    }


def _mean(values: torch.Tensor) -> float:
    return float(values.mean()) if len(values) else math.nan


@dataclass(frozen=True)
class Result:
    """One network's outcome under a :class:`Budget`.

    Args:
        name: the architecture's name.
        parameters: trainable parameters.
        train_seconds: wall time of training.
        infer_seconds: wall time of predicting the test slices.
        scores: class name to :class:`Scores` on the test slices.
        prediction: ``(N, 1, H, W)`` predicted label maps of the test slices.
    """

    name: str
    parameters: int
    train_seconds: float
    infer_seconds: float
    scores: dict[str, Scores]
    prediction: np.ndarray


def run_comparison(
    architectures: Mapping[str, Callable[[int, int], nn.Module]],
    train: SliceSet,
    test: SliceSet,
    budget: Budget,
    tolerance_mm: float,
) -> list[Result]:
    """Build each network from the same seed, train it on ``train`` with ``budget`` and score it on ``test``."""
    results = []
    for name, build in architectures.items():
        torch.manual_seed(budget.seed)
        network = build(train.images.shape[1], len(CLASSES) + 1)
        train_seconds = train_network(network, train, budget)
        start = time.perf_counter()
        prediction = predict(network, test.images)
        infer_seconds = time.perf_counter() - start
        scores = score(prediction, test.labels, test.spacing, tolerance_mm)
        results.append(Result(name, parameter_count(network), train_seconds, infer_seconds, scores, prediction))
    return results


def results_table(results: list[Result]) -> str:
    """A plain-text table: parameters, times and every class's Dice, HD95 (mm) and surface Dice."""
    header = f"{'network':<16}{'params':>9}{'train s':>9}{'infer s':>9}"
    header += "".join(f"{f'{c} {m}':>16}" for c in CLASSES for m in ("Dice", "HD95", "sDice"))
    lines = [header]
    for r in results:
        cells = "".join(f"{v:>16.3f}" for c in CLASSES for v in astuple(r.scores[c]))
        lines.append(f"{r.name:<16}{r.parameters:>9,}{r.train_seconds:>9.1f}{r.infer_seconds:>9.2f}{cells}")
    return "\n".join(lines)
