"""The ``data`` group: datasets as classes that read images and labels (IDX files, scikit-learn's digits, a folder,
yours), their facts, and the splits held on the device as tensors."""

from mnistlab.data.base import Dataset, Images
from mnistlab.data.digits import Digits
from mnistlab.data.folder import Folder
from mnistlab.data.idx import Idx

__all__ = ["Dataset", "Digits", "Folder", "Idx", "Images"]
