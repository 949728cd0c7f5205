"""Load network weights safely: tensors only, never arbitrary pickled objects."""

from __future__ import annotations

import pickle
from pathlib import Path

from medseg.errors import MedsegError


def check_weights(path: str | Path) -> Path:
    """Check that a weights file exists and loads with ``torch.load(weights_only=True)``.

    Raises:
        MedsegError: for a missing file, an ONNX model, a file that is not a PyTorch checkpoint, or a
            checkpoint that needs pickle to load (which could run code, so it is refused).
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise MedsegError("weights file not found", path)
    if path.suffix == ".onnx":
        raise MedsegError("is an ONNX model; medseg runs PyTorch weights (a state_dict saved with torch.save)", path)
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise MedsegError(
            "checkpoint holds pickled Python objects; refusing to load it (weights_only=True). "
            "Re-save it as a state_dict of tensors",
            path,
        ) from None
    except KeyError:  # torch's reader of old checkpoints met bytes that are none
        raise MedsegError("is not a PyTorch checkpoint", path) from None
    except (RuntimeError, OSError, EOFError, ValueError) as error:
        raise MedsegError(f"cannot read weights ({str(error).splitlines()[0]})", path) from None
    return path
