"""Load network weights safely: tensors only, never arbitrary pickled objects."""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path

from medseg.errors import MedsegError

WEIGHTS_SUFFIXES = (".pt", ".pth", ".ckpt")


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


def weights_among(
    weights: str | Path | Sequence[str | Path] | None, inputs: Sequence[str | Path]
) -> tuple[list[Path] | None, list[Path]]:
    """Weights and scans, with the weights files among ``inputs`` moved to the weights when any are given.

    ``--weights a.pt b.pt scan.nii.gz`` on the command line gives one value to the option and the
    rest to the scans; a weights file (``.pt``, ``.pth``, ``.ckpt``) is never a scan.

    Examples:
        >>> weights_among(["a.pt"], ["b.pt", "scan.nii.gz"])
        ([PosixPath('a.pt'), PosixPath('b.pt')], [PosixPath('scan.nii.gz')])
        >>> weights_among(None, ["scan.nii.gz"])
        (None, [PosixPath('scan.nii.gz')])
    """
    scans = [Path(path) for path in inputs]
    if weights is None or (not isinstance(weights, str | Path) and not weights):
        return None, scans
    given = [Path(weights)] if isinstance(weights, str | Path) else [Path(path) for path in weights]
    among = [path for path in scans if path.suffix in WEIGHTS_SUFFIXES]
    return given + among, [path for path in scans if path.suffix not in WEIGHTS_SUFFIXES]
