"""MONAI's ``Spacingd``, filled a slab of output slices at a time, so a clinical scan resamples in bounded memory.

``Spacingd`` resamples in float64 by default (its ``dtype``): on a 512 x 512 x 200 CT it holds the
scan in float64 and a float64 sampling grid of the whole output at once, about 0.9 GB above the
0.2 GB scan, which was the peak of a whole ``medseg infer`` run. Here MONAI plans the resampling as
it always does (``Spacing`` computes the output grid, lazily, without moving a voxel), and MONAI's
own ``spatial_resample`` then fills the output a slab of slices at a time, each from the source
slices that slab can reach. The values are ``Spacingd``'s to float32 rounding (a slab's coordinates
round differently in float64, which moves a voxel's value by an ulp or two at most), and the metadata
(affine, pixdim, and the applied-operations record that ``Invertd`` reads) is written by MONAI's
``track_transform_meta`` exactly as ``Spacingd`` writes it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from monai.config import USE_COMPILED
from monai.data import MetaTensor
from monai.data.utils import AFFINE_TOL
from monai.transforms import Spacingd, SpatialResample
from monai.transforms.inverse import TraceableTransform
from monai.transforms.spatial.functional import spatial_resample
from monai.utils import LazyAttr, TraceKeys, get_equivalent_dtype

SLAB_VOXELS = 1_000_000  # output voxels filled at once: a float64 grid of 24 MB


def _shift(axis_offset: int) -> torch.Tensor:
    """``4 x 4`` float64 translation by ``axis_offset`` voxels along the third axis."""
    shift = torch.eye(4, dtype=torch.float64)
    shift[2, 3] = axis_offset
    return shift


def _source_slices(xform: torch.Tensor, shape: tuple[int, int, int], start: int, stop: int, depth: int) -> slice:
    """The source slices that output slices ``start:stop`` interpolate from, one slice of margin each side.

    Args:
        xform: ``4 x 4`` map from output voxel indices to source voxel indices.
        shape: output spatial shape ``(X, Y, Z)``.
        start: the output slab's first slice.
        stop: the slice after its last.
        depth: the source's number of slices.
    """
    corners = torch.tensor(
        [[x, y, z, 1.0] for x in (0, shape[0] - 1) for y in (0, shape[1] - 1) for z in (start, stop - 1)],
        dtype=torch.float64,
    )
    reach = (xform @ corners.T)[2]
    low = int(np.floor(float(reach.min()))) - 1
    high = int(np.ceil(float(reach.max()))) + 2
    return slice(min(max(low, 0), depth - 1), max(min(high, depth), 1))


class SlabResample(SpatialResample):
    """MONAI's ``SpatialResample``, run over slabs of output slices when it would interpolate a 3D volume.

    Anything else goes to ``SpatialResample`` itself: lazy calls, pending operations, MONAI's compiled
    resampler, an output that fits one slab, a grid MONAI leaves unchanged, and modes other than
    ``bilinear``. Nearest-neighbour resampling is left whole because its ties (a point exactly half way
    between two voxels) are broken by float rounding, which a slab's own coordinates round differently.

    Args:
        slab_voxels: output voxels filled at once.
        **kwargs: as for ``SpatialResample``.
    """

    def __init__(self, slab_voxels: int = SLAB_VOXELS, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.slab_voxels = slab_voxels

    def __call__(
        self,
        img: torch.Tensor,
        dst_affine: torch.Tensor | None = None,
        spatial_size: Any = None,
        mode: str | int | None = None,
        padding_mode: str | None = None,
        align_corners: bool | None = None,
        dtype: Any = None,
        lazy: bool | None = None,
    ) -> torch.Tensor:
        """Resample ``(C, x, y, z)`` ``img`` onto ``dst_affine``'s grid of ``spatial_size``, as ``SpatialResample``."""
        args = (img, dst_affine, spatial_size, mode, padding_mode, align_corners, dtype)
        mode = self.mode if mode is None else mode
        eager = not (self.lazy if lazy is None else lazy)
        if not (
            eager
            and isinstance(img, MetaTensor)
            and not img.pending_operations
            and img.ndim == 4
            and dst_affine is not None
            and mode == "bilinear"
            and not USE_COMPILED
        ):
            return super().__call__(*args, lazy=lazy)
        planned = super().__call__(*args, lazy=True)  # MONAI's plan: output shape and voxel map, no voxels moved
        assert isinstance(planned, MetaTensor)
        plan = planned.pending_operations[-1]
        x, y, z = (int(n) for n in plan[LazyAttr.SHAPE])
        xform, shape = plan[LazyAttr.AFFINE].to(torch.float64), (x, y, z)
        src_affine = plan[TraceKeys.EXTRA_INFO]["src_affine"]
        same_size = shape == tuple(img.shape[1:])
        unchanged = same_size and (  # spatial_resample's own test for handing the image back as it is
            torch.allclose(xform, torch.eye(4, dtype=torch.float64), atol=AFFINE_TOL)
            or torch.allclose(src_affine, torch.as_tensor(dst_affine, dtype=torch.float64), atol=AFFINE_TOL)
        )
        slab = max(1, self.slab_voxels // (x * y))
        if unchanged or slab >= z:
            return super().__call__(*args, lazy=False)
        dtype_pt = get_equivalent_dtype(dtype or self.dtype or img.dtype, torch.Tensor)
        align = self.align_corners if align_corners is None else align_corners
        padding = self.padding_mode if padding_mode is None else padding_mode
        dst = torch.as_tensor(dst_affine, dtype=torch.float64)
        voxels = img.as_tensor()
        out = torch.empty((img.shape[0], *shape), dtype=torch.float32, device=voxels.device)
        for start in range(0, z, slab):
            stop = min(start + slab, z)
            source = _source_slices(xform, shape, start, stop, img.shape[3])
            piece = MetaTensor(voxels[..., source], affine=src_affine @ _shift(source.start))
            out[..., start:stop] = spatial_resample(
                piece, dst @ _shift(start), (x, y, stop - start), mode, padding, align, dtype_pt, False, None
            )
        meta = TraceableTransform.track_transform_meta(
            img,
            sp_size=shape,
            affine=xform,
            extra_info=dict(plan[TraceKeys.EXTRA_INFO]),
            orig_size=plan[TraceKeys.ORIG_SIZE],
            transform_info=self.get_transform_info(),
            lazy=False,
        )
        return MetaTensor(out).copy_meta_from(meta)


class SlabSpacingd(Spacingd):
    """MONAI's ``Spacingd`` whose resampling is :class:`SlabResample`; the same arguments, the same result.

    Args:
        *args: as for ``Spacingd``.
        slab_voxels: output voxels filled at once.
        **kwargs: as for ``Spacingd``.
    """

    def __init__(self, *args: Any, slab_voxels: int = SLAB_VOXELS, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        stock = self.spacing_transform.sp_resample
        self.spacing_transform.sp_resample = SlabResample(
            slab_voxels=slab_voxels,
            mode=stock.mode,
            padding_mode=stock.padding_mode,
            align_corners=stock.align_corners,
            dtype=stock.dtype,
            lazy=stock.lazy,
        )
