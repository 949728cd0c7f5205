"""The 3D liver bundle's tumour-kind diagnostic finds each phantom tumour and what a mask calls it."""

import importlib.util
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from medseg.samples.datasets import write_ct_dataset
from medseg.samples.phantom.render import LIVER, TUMOUR

SCRIPT = Path(__file__).parents[1] / "bundles/ct_liver_tumour_3d/docs/training/tumour_kinds.py"
SEED = 20261202  # case 0 holds one rim-enhancing tumour, case 1 one hypodense tumour


@pytest.fixture(scope="module")
def kinds():
    spec = importlib.util.spec_from_file_location("tumour_kinds", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def held(tmp_path_factory):
    return write_ct_dataset(tmp_path_factory.mktemp("held"), cases=2, test_cases=0, seed=SEED, workers=1)


def _masks(held: Path, folder: Path, relabel) -> Path:
    folder.mkdir()
    for label in sorted((held / "labelsTr").glob("*.nii.gz")):
        image = nib.load(label)
        mask = nib.Nifti1Image(relabel(np.asarray(image.dataobj)), image.affine)
        nib.save(mask, folder / label.name.replace(".nii", "_seg.nii"))
    return folder


def _components(kinds, held: Path, masks: Path) -> list:
    return [row for p in kinds.patients(SEED, held) for row in kinds.components(p, kinds.read_mask(masks, p))]


def test_each_tumour_is_found_with_its_kind_and_what_the_mask_calls_it(kinds, held, tmp_path):
    perfect = _components(kinds, held, _masks(held, tmp_path / "perfect", lambda a: a))
    assert [(r.case, r.kinds) for r in perfect] == [("liver_000", ("rim",)), ("liver_001", ("hypo",))]
    assert [r.diameters_mm for r in perfect] == [(12.1,), (17.5,)]
    assert all(r.called == {"tumour": 1.0, "liver": 0.0, "background": 0.0} for r in perfect)
    assert 0.5 < perfect[0].ml < 2 and 1.5 < perfect[1].ml < 5

    liver_masks = _masks(held, tmp_path / "liver", lambda a: np.where(a == TUMOUR, LIVER, a))
    as_liver = _components(kinds, held, liver_masks)
    assert all(r.called["liver"] == 1.0 for r in as_liver)
    table = kinds.summary(as_liver)
    assert set(table) == {"rim", "hypo"} and table["rim"]["count"] == 1
    assert table["hypo"]["tumour"] == 0.0 and table["hypo"]["liver"] == 1.0


def test_another_seed_is_refused(kinds, held):
    with pytest.raises(ValueError, match=r"liver_000: seed 1 draws tumours of .* mm, the dataset has \[12.1\] mm"):
        list(kinds.patients(1, held))


def test_the_bound_blind_to_rim_shells_removes_the_shell_and_nothing_else(kinds, held):
    rim, hypo = kinds.patients(SEED, held)
    tumour = rim.label == TUMOUR
    shell = kinds.shells(rim)
    in_plane = np.zeros((3, 3, 3), bool)
    in_plane[:, :, 1] = True
    surface = tumour & ~ndimage.binary_erosion(tumour, in_plane)  # the outline of each slice
    centre = np.round(np.argwhere(tumour).mean(axis=0)).astype(int)
    assert shell[surface].mean() > 0.95 and not shell[tuple(centre)]
    assert 0.3 < shell.sum() / tumour.sum() < 0.7  # the core is 0.7-0.85 of the lesion across
    seen = tumour.sum() - shell.sum()
    assert kinds.blind_to_shells(rim) == pytest.approx(2 * seen / (seen + tumour.sum()))
    assert not kinds.shells(hypo).any() and kinds.blind_to_shells(hypo) == 1.0
