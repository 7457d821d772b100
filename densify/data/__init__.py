"""Images and labels: :class:`ImageSet`, :class:`DataSplits`, and loaders selected by a data-spec string."""

from densify.data._imageset import DataSplits, ImageSet
from densify.data._spec import BUILTIN_DATASETS, DEFAULT_DATA, PREFIXES, DataSpec, load_data, parse_spec
from densify.data._subset import carve_heldout, stratified_indices, stratified_subset
from densify.data._working import AUTO_SIDE, at_working_size, resize_images, working_size

__all__ = [
    "AUTO_SIDE",
    "BUILTIN_DATASETS",
    "DEFAULT_DATA",
    "PREFIXES",
    "DataSpec",
    "DataSplits",
    "ImageSet",
    "at_working_size",
    "carve_heldout",
    "load_data",
    "parse_spec",
    "resize_images",
    "stratified_indices",
    "stratified_subset",
    "working_size",
]
