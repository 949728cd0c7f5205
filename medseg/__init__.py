"""medseg: medical image segmentation on MONAI."""

__version__ = "0.1.0"
