"""Every bundle runs where MONAI Label 0.8.5 runs: MONAI 1.4, without medseg (slow; CI runs it).

A separate virtual environment gets ``monai==1.4.0`` and what its bundle runner needs (no medseg).
There, each bundle's ``inference.json`` runs through ``python -m monai.bundle run`` on a sample scan
with the shipped weights; its mask must equal ``medseg infer --stock`` here (MONAI 1.6).
"""

import subprocess
import venv
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medseg.bundles import BUILTIN_BUNDLES, Bundle
from medseg.inference.options import InferenceOptions
from medseg.inference.predict import segment
from medseg.io.nifti import write_nifti
from medseg.samples.mni import load_template
from medseg.samples.mri_variants import MriVariant, render_variant

pytestmark = pytest.mark.slow

PACKAGES = ["torch==2.13.0", "monai==1.4.0", "nibabel", "pytorch-ignite", "fire"]
BUNDLES = sorted(path.name for path in BUILTIN_BUNDLES.iterdir() if (path / "configs").is_dir())


@pytest.fixture(scope="module")
def monai14(tmp_path_factory) -> Path:
    """Python of a fresh environment with MONAI 1.4.0 and no medseg."""
    folder = tmp_path_factory.mktemp("monai14")
    venv.create(folder, with_pip=True)
    python = folder / "bin" / "python"
    for packages in (PACKAGES[:1], PACKAGES[1:]):  # the pinned CPU torch first, as the Makefile does
        subprocess.run([python, "-m", "pip", "install", "--quiet", *packages], check=True, timeout=900)

    def probe(code: str) -> subprocess.CompletedProcess:  # outside the repo, whose medseg/ would be importable
        return subprocess.run([python, "-c", code], capture_output=True, text=True, cwd=folder)

    assert probe("import monai; print(monai.__version__)").stdout.strip() == "1.4.0"
    assert probe("import medseg").returncode != 0
    return python


@pytest.fixture(scope="module")
def samples(tmp_path_factory, small_ct, small_brats) -> dict[str, Path]:
    """One small scan per modality, in a folder of its own (``imagesTs/``), as the bundles' configs read them."""
    folder = tmp_path_factory.mktemp("portable_samples")
    rng = np.random.default_rng(0)
    variant = MriVariant("mri", spacing=(3.0, 3.0, 3.0), orientation="LPS")
    image, _, affine = render_variant(load_template(), variant, rng)
    sources = {
        "ct": small_ct / "imagesTs" / "liver_006.nii.gz",
        "brats": next((small_brats / "imagesTs").glob("*.nii.gz")),
    }
    for kind, source in sources.items():
        (folder / kind / "imagesTs").mkdir(parents=True)
        (folder / kind / "imagesTs" / "scan.nii.gz").write_bytes(source.read_bytes())
    write_nifti(folder / "mri" / "imagesTs" / "scan.nii.gz", image, affine)
    return {name: folder / name for name in ("ct", "mri", "brats")}


def _sample_for(bundle: Bundle, samples: dict[str, Path]) -> Path:
    modality = bundle.metadata["network_data_format"]["inputs"]["image"]["modality"]
    return samples["ct" if modality == "CT" else ("brats" if bundle.input_channels == 4 else "mri")]


@pytest.mark.parametrize("name", BUNDLES)
def test_inference_json_under_monai_14_equals_medseg(tmp_path, monai14, samples, name):
    bundle = Bundle(BUILTIN_BUNDLES / name)
    data = _sample_for(bundle, samples)
    command = [monai14, "-m", "monai.bundle", "run", "--config_file", str(bundle.config("inference"))]
    command += ["--bundle_root", str(bundle.root), "--dataset_dir", str(data)]
    command += ["--output_dir", str(tmp_path / "portable")]
    command += ["--device", "$torch.device('cpu')"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    scan, stock = data / "imagesTs" / "scan.nii.gz", InferenceOptions(stock=True)
    (ours,) = segment(bundle, [scan], tmp_path / "medseg", device="cpu", options=stock)
    theirs = nib.load(tmp_path / "portable" / "scan_seg.nii.gz")
    mine = nib.load(ours)
    assert theirs.shape == mine.shape
    np.testing.assert_allclose(theirs.affine, mine.affine, atol=1e-4)
    agreement = np.mean(np.asarray(theirs.dataobj) == np.asarray(mine.dataobj))
    assert agreement > 0.999, f"{name}: MONAI 1.4 and medseg agree on {agreement:.4%} of voxels"
    assert np.asarray(mine.dataobj).any(), "the shipped model finds something in its sample"
