"""Images and labels: :class:`ImageSet`, :class:`DataSplits`, and loaders selected by a data-spec string."""

from densify.data._imageset import DataSplits, ImageSet
from densify.data._spec import BUILTIN_DATASETS, DEFAULT_DATA, PREFIXES, DataSpec, load_data, parse_spec
from densify.data._subset import carve_heldout, stratified_indices, stratified_subset

__all__ = [
    "BUILTIN_DATASETS",
    "DEFAULT_DATA",
    "PREFIXES",
    "DataSpec",
    "DataSplits",
    "ImageSet",
    "carve_heldout",
    "load_data",
    "parse_spec",
    "stratified_indices",
    "stratified_subset",
]
