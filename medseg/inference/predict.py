"""``medseg infer``: run a bundle's ``inference.json`` on scans and write one mask per scan.

The bundle's own preprocessing, network and inferer run unchanged; medseg overrides the data list,
the device, the weights and the writer (:class:`medseg.io.mask_writer.SaveMaskd`). Masks are
written into a staging folder inside the output folder and moved into place only when every scan
is done, so a failure leaves no partial output. A DICOM series folder is first converted to a
temporary NIfTI on the series' grid (:mod:`medseg.io.dicom`), which is deleted afterwards.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from medseg.bundles import Bundle, append_to, load_workflow, run_workflow
from medseg.data.validate import check_scan
from medseg.devices import device_expression
from medseg.errors import MedsegError
from medseg.io.dicom import series_to_nifti
from medseg.io.paths import mask_path, scan_name
from medseg.weights import check_weights


def _unique_names(paths: Sequence[Path]) -> None:
    seen: dict[str, Path] = {}
    for path in paths:
        name = scan_name(path)
        if name in seen:
            raise MedsegError(f"two inputs would write the same mask {name}_seg.nii.gz (also {seen[name]})", path)
        seen[name] = path


def _nifti_scan(source: Path, scratch: Path, channels: int) -> Path:
    """Check ``source``; return it, or for a DICOM series folder its NIfTI written into ``scratch``.

    Errors name ``source``, never the converted file.
    """
    if not source.is_dir():
        return check_scan(source, channels=channels).path
    converted = series_to_nifti(source, scratch / f"{scan_name(source)}.nii.gz")
    try:
        return check_scan(converted, channels=channels).path
    except MedsegError as error:
        raise MedsegError(error.problem, source) from None


def segment(
    bundle: Bundle,
    inputs: Sequence[str | Path],
    output_dir: str | Path,
    *,
    weights: str | Path | None = None,
    device: str = "auto",
    overrides: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> list[Path]:
    """Segment scans with a bundle.

    Args:
        bundle: the bundle to run.
        inputs: NIfTI scans, or folders that each hold one DICOM series (the mask of folder ``X`` is
            ``X_seg.nii.gz``, on the series' grid).
        output_dir: where ``<name>_seg.nii.gz`` masks go (created if missing).
        weights: weights file; defaults to the bundle's ``models/model.pt``.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        overrides: further config overrides, id to value (e.g. ``{"overlap": 0.25}``).
        progress: show a progress bar over the scans.

    Returns:
        The written mask paths, in input order.

    Raises:
        MedsegError: for unusable inputs or weights; nothing is written then.
    """
    if not inputs:
        raise MedsegError("no input scans given")
    sources = [Path(path) for path in inputs]
    with tempfile.TemporaryDirectory(prefix="medseg-dicom-") as scratch:
        scans = [_nifti_scan(source, Path(scratch), bundle.input_channels) for source in sources]
        _unique_names(sources)
        return _segment_scans(
            bundle, scans, output_dir, weights=weights, device=device, overrides=overrides, progress=progress
        )


def _segment_scans(
    bundle: Bundle,
    scans: Sequence[Path],
    output_dir: str | Path,
    *,
    weights: str | Path | None,
    device: str,
    overrides: Mapping[str, Any] | None,
    progress: bool,
) -> list[Path]:
    """:func:`segment` for checked NIfTI scans."""
    weights_path = check_weights(weights if weights is not None else bundle.weights)
    config: dict[str, Any] = {
        "dataset#data": [{"image": str(scan.resolve())} for scan in scans],
        "ckpt_path": str(weights_path.resolve()),
        "device": device_expression(device),
        **(overrides or {}),
    }
    output = Path(output_dir)
    created = not output.exists()
    output.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".medseg-staging-", dir=output))
    done = False
    try:
        config["writer"] = {
            "_target_": "medseg.io.mask_writer.SaveMaskd",
            "keys": "pred",
            "output_dir": str(staging),
        }
        workflow = load_workflow(bundle, ["inference"], workflow_type="infer", overrides=config, quiet=True)
        if progress:
            bar = {
                "_target_": "ignite.handlers.ProgressBar",
                "persist": True,
                "desc": f"{bundle.name}: scans",
            }
            append_to(workflow, "handlers", [bar])
        run_workflow(workflow)
        written = [mask_path(output, scan) for scan in scans]
        for target in written:
            os.replace(staging / target.name, target)
        done = True
        return written
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if created and not done and not any(output.iterdir()):
            output.rmdir()
