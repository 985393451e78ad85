"""User data as `Source`s, and `tf.data` pipelines for `tf.distribute`.

  from datasets import from_arrays, from_csv, from_image_directory
  from datasets import from_tfrecords, from_dataset_fn, from_path

Each constructor returns one split (training or eval data) as a
`datasets.source.Source`; `datasets.catalogue.load` gives the built-in
(train, eval) pairs. This package never reads flags and never imports
`launch` or `trainer`; importing it is cheap (TensorFlow loads only when a
pipeline or a TFRecord/image source is built).
"""

import importlib

_EXPORTS = {
    "from_arrays": "datasets.arrays",
    "from_csv": "datasets.csv_source",
    "from_image_directory": "datasets.images",
    "from_tfrecords": "datasets.tfrecords",
    "from_dataset_fn": "datasets.dataset_fn_source",
    "from_path": "datasets.paths",
    "Source": "datasets.source",
    "DataError": "datasets.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
  if name not in _EXPORTS:
    raise AttributeError(f"module 'datasets' has no attribute {name!r}")
  value = getattr(importlib.import_module(_EXPORTS[name]), name)
  globals()[name] = value
  return value
