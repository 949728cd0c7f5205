import sys, glob, os, numpy as np, nibabel as nib
res = {}
for s in sys.argv[2:]:
    data = f"/work/data/brats_held_{s}"; ev = f"/work/eval/{sys.argv[1]}_{s}/masks"
    d = {"WT": [], "TC": [], "ET": []}
    for lab in sorted(glob.glob(f"{data}/labelsTr/*.nii.gz")):
        name = os.path.basename(lab).replace(".nii.gz", "")
        ref = np.asarray(nib.load(lab).dataobj); pred = np.asarray(nib.load(f"{ev}/{name}_seg.nii.gz").dataobj)
        for r, vals in {"WT": (1, 2, 4), "TC": (1, 4), "ET": (4,)}.items():
            a, b = np.isin(pred, vals), np.isin(ref, vals)
            if not b.any(): continue
            d[r].append(2 * (a & b).sum() / (a.sum() + b.sum()))
    res[s] = {r: np.mean(v) for r, v in d.items()}
    print(s, {r: round(float(np.mean(v)), 3) for r, v in d.items()}, {r: len(v) for r, v in d.items()})
for r in ("WT", "TC", "ET"):
    v = [res[s][r] for s in res]; print(r, f"{np.mean(v):.3f} +- {np.std(v):.3f}")
