"""Image sources and decoding."""
from .decode import ImageError, decode, read_image
from .sources import Dataset, from_csv, from_folder, from_unlabelled, open_dataset

__all__ = ["Dataset", "ImageError", "decode", "from_csv", "from_folder", "from_unlabelled", "open_dataset",
           "read_image"]
