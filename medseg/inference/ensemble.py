"""An ensemble of trained networks (e.g. the folds of a cross-validation) behind one inferer.

The evaluator hands an inferer one network; :class:`EnsembleInferer` loads each member's weights
into it in turn, runs the wrapped inferer (the bundle's own, or medseg's fast one), turns the output
into probabilities with the bundle's activation and averages them. It returns the logits of the
mean probabilities, so the bundle's postprocessing (its own ``Activationsd``, then argmax or
threshold) turns them back into exactly those mean probabilities.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from monai.inferers import Inferer

ACTIVATIONS = ("softmax", "sigmoid", "none")
EPSILON = 1e-7


def _state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A network state dict from a weights file: a plain state dict, or a checkpoint with a ``model`` entry."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state["model"] if "model" in state and isinstance(state["model"], dict) else state


class EnsembleInferer(Inferer):
    """Average the probabilities of several sets of weights for the same network.

    Args:
        inferer: the inferer each member runs through.
        weights: the members' weights files (loaded once, on the CPU, with ``weights_only=True``).
        activation: the bundle's activation: ``softmax`` (labels), ``sigmoid`` (overlapping
            regions), or ``none`` to average the raw outputs.
    """

    def __init__(self, inferer: Inferer, weights: Sequence[str | Path], activation: str = "softmax") -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        if not weights:
            raise ValueError("an ensemble needs at least one set of weights")
        self.inferer, self.activation = inferer, activation
        self.members = [_state_dict(path) for path in weights]

    def __call__(  # type: ignore[override]  # it loads each member's weights: a module, not any callable
        self, inputs: torch.Tensor, network: torch.nn.Module, *args: Any, **kwargs: Any
    ) -> torch.Tensor:
        """Logits ``(B, C_out, *spatial)`` whose activation is the members' mean probability."""
        total: torch.Tensor | None = None
        for state in self.members:
            network.load_state_dict(state)
            probabilities = self._probabilities(self.inferer(inputs, network, *args, **kwargs).float())
            total = probabilities if total is None else total + probabilities
        assert total is not None
        return self._logits(total / len(self.members))

    def _probabilities(self, output: torch.Tensor) -> torch.Tensor:
        if self.activation == "softmax":
            return torch.softmax(output, dim=1)
        return torch.sigmoid(output) if self.activation == "sigmoid" else output

    def _logits(self, mean: torch.Tensor) -> torch.Tensor:
        if self.activation == "softmax":
            return torch.log(mean.clamp_min(EPSILON))
        return torch.logit(mean, eps=EPSILON) if self.activation == "sigmoid" else mean
