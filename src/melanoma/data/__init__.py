"""Dataset readers (ISIC layout, folder + CSV), splits, checks and the ISIC archive preparation.

``transforms`` (albumentations, a [train] extra) is imported from its module, not from here, so that serving
code can use the readers without the training dependencies.
"""

from melanoma.data.folder import check_samples, read_image_folder, stratified_split
from melanoma.data.isic import read_isic2017, resolve_data_dir
from melanoma.data.samples import IMAGE_SUFFIXES, DataError, Sample

__all__ = [
    "IMAGE_SUFFIXES",
    "DataError",
    "Sample",
    "check_samples",
    "read_image_folder",
    "read_isic2017",
    "resolve_data_dir",
    "stratified_split",
]
