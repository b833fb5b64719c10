"""Dataset readers (ISIC layout, folder + CSV), splits, transforms and the ISIC archive preparation."""

from melanoma.data.isic import read_isic2017, resolve_data_dir
from melanoma.data.samples import IMAGE_SUFFIXES, DataError, Sample

__all__ = ["IMAGE_SUFFIXES", "DataError", "Sample", "read_isic2017", "resolve_data_dir"]
