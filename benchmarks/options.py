"""What each ``medseg infer`` option does to Dice and time, against the ground truth, in one run.

For a bundle and a labelled dataset, every variant segments the same scans; the table gives the
mean Dice per label (over cases whose reference has the label), each label's agreement with the
stock recipe's masks (Dice, voxels pooled over the cases), the number of cases with false
positives, and seconds per scan. Variants: the stock recipe, the fast path (default), and the fast
path with one option changed (``--overlap 0.25``, ``--window large``, ``--fast``, ``--label-rules``,
``--tta`` where the bundle was trained with mirroring).

    python benchmarks/options.py --bundle ct_liver_tumour_3d --data /path/to/msd_dataset
    python benchmarks/options.py --bundle mri_brain_tissue_3d --data DIR --cases 4
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

VARIANTS = {
    "stock": {"stock": True},
    "fast (default)": {},
    "fast, overlap 0.25": {"overlap": 0.25},
    "fast, --window large": {"window": "large"},
    "fast, --fast (coarse)": {"coarse": True},
    "fast, --label-rules": {"label_rules": True},
    "fast, --tta": {"tta": True},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", default="ct_liver_tumour_3d")
    parser.add_argument("--data", type=Path, required=True, help="labelled dataset (test labels, else training)")
    parser.add_argument("--cases", type=int, default=6, help="how many labelled cases to use")
    parser.add_argument("--weights", default=None)
    args = parser.parse_args()

    import nibabel as nib
    import numpy as np

    from medseg.bundles import find_bundle
    from medseg.data.discover import discover
    from medseg.errors import MedsegError
    from medseg.inference.options import InferenceOptions
    from medseg.inference.predict import segment
    from medseg.metrics import score_case

    bundle = find_bundle(args.bundle)
    dataset = discover(args.data)
    cases = (dataset.labelled_test or dataset.training)[: args.cases]
    labels = {label.value: label.name for label in bundle.labels}
    names = [name for value, name in labels.items() if value]
    print(f"{bundle.name}: {len(cases)} cases from {args.data}")
    agreement_header = " ".join(f"{'vs stock':>9}" for _ in names)
    print(
        f"{'variant':<24} "
        + " ".join(f"{n[:12]:>12}" for n in names)
        + f" {agreement_header} {'FP cases':>9} {'s/scan':>7}"
    )
    stock_masks: list[np.ndarray] = []
    for variant, settings in VARIANTS.items():
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            try:
                options = InferenceOptions(**settings)
                masks = segment(bundle, [c.image[0] for c in cases], out, weights=args.weights, options=options)
            except MedsegError as error:
                print(f"{variant:<24} not available: {error.problem}")
                continue
            seconds = (time.perf_counter() - start) / len(cases)
            dice = {name: [] for name in names}
            false_positives = 0
            arrays = [np.asarray(nib.load(mask).dataobj) for mask in masks]
            stock_masks = stock_masks or arrays  # the first variant is the stock recipe
            for case, mask in zip(cases, arrays, strict=True):
                reference = nib.load(case.label)
                spacing = tuple(float(s) for s in reference.header.get_zooms()[:3])
                scores = score_case(mask, np.asarray(reference.dataobj), labels, spacing)
                false_positives += any(s.false_positive for s in scores.values())
                for name, score in scores.items():
                    if not math.isnan(score.dice):
                        dice[name].append(score.dice)
        cells = " ".join(f"{(np.mean(dice[n]) if dice[n] else float('nan')):12.4f}" for n in names)
        agreement = " ".join(f"{pooled_dice(arrays, stock_masks, value):9.4f}" for value in labels if value)
        print(f"{variant:<24} {cells} {agreement} {false_positives:>9} {seconds:7.1f}")


def pooled_dice(masks: list, references: list, value: int) -> float:
    """Dice of label ``value`` between two lists of masks, voxels pooled over the list."""
    import numpy as np
    from inference import dice  # the sibling script; python puts this folder on sys.path

    ours, theirs = (np.concatenate([(mask == value).ravel() for mask in group]) for group in (masks, references))
    return dice(ours, theirs)


if __name__ == "__main__":
    main()
