"""`from_tfrecords`: the user's own TFRecord files of `tf.train.Example`s.

The schema is either a dict of `tf.io.FixedLenFeature`s plus the label's
name(s), or a `parse_fn(serialized) -> (features, label)`. Next to files
given by path (`datasets.from_path`), a `schema.json` describes them:

  {"features": {"pixels": {"shape": [28, 28, 1], "dtype": "float32"}},
   "label": "label",                      # or ["a", "b"], or a dict of specs
   "num_classes": 10}                     # optional

`dtype` is one of float32, int64, string; a label given by name only is a
scalar int64 class index. See `datasets.tfrecord_stream` for sharding and
resume (1 and N workers see the same data in a different order).
"""

import json
import os

import numpy as np

from datasets import source as source_lib
from datasets import tfrecord_files
from datasets.csv_source import expand_paths
from datasets.errors import DataError

SCHEMA_FILE = "schema.json"
_DTYPES = ("float32", "int64", "string")


def _paths(file_pattern) -> list[str]:
  if isinstance(file_pattern, (list, tuple)):
    paths = sorted(str(p) for p in file_pattern)
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing or not paths:
      raise DataError(f"the TFRecord files {', '.join(missing) or '[]'} do"
                      " not exist.")
    return paths
  return expand_paths(str(file_pattern), "TFRecord")


def _label_specs(features: dict, label):
  """(input specs, label specs, label is a single name)."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  inputs = dict(features)
  if isinstance(label, str):
    names, single = [label], True
  elif isinstance(label, dict):
    return inputs, dict(label), False
  elif isinstance(label, (list, tuple)) and label:
    names, single = [str(n) for n in label], False
  else:
    raise DataError("label must be a feature name, a list of names or a dict"
                    " name -> tf.io.FixedLenFeature.")
  labels = {name: inputs.pop(name, tf.io.FixedLenFeature([], tf.int64))
            for name in names}
  return inputs, labels, single


def _schema_parser(inputs: dict, labels: dict, single_label: bool,
                   scale: float):
  """parse(record) -> (features, label) from FixedLenFeature specs."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  spec = {**inputs, **labels}

  def cast_input(tensor):
    if tensor.dtype == tf.string:
      return tensor
    tensor = tf.cast(tensor, tf.float32)
    return tensor * scale if scale != 1.0 else tensor

  def cast_label(tensor):
    return tf.cast(tensor, tf.int32 if tensor.dtype.is_integer
                   else tensor.dtype)

  def parse(record):
    example = tf.io.parse_single_example(record, spec)
    x = {name: cast_input(example[name]) for name in inputs}
    y = {name: cast_label(example[name]) for name in labels}
    if len(x) == 1:
      x = next(iter(x.values()))
    if single_label:
      y = next(iter(y.values()))
    return x, y

  return parse


def _label_key(name: str, spec) -> str:
  """The counts file's key of an int64 label: its name and default."""
  if spec.default_value is None:
    return name
  return f"{name}={[int(v) for v in np.ravel(spec.default_value)]}"


def _largest_labels(specs: dict):
  """find_largest(path, keys) -> ({key: largest int64 label}, records).

  Read in plain Python (`datasets.tfrecord_files`): this runs while the run
  is planned, before TensorFlow's runtime may start.
  """
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from google.protobuf.message import DecodeError  # pylint: disable=import-outside-toplevel
  by_key = {_label_key(name, spec): (name, spec) for name, spec in specs.items()}

  def find_largest(path: str, keys):
    largest, index = {key: -1 for key in keys}, -1
    for index, data in enumerate(tfrecord_files.read_records(path)):
      try:
        feature = tf.train.Example.FromString(data).features.feature
      except DecodeError:
        raise DataError(f"record {index} of {path} is not a"
                        " tf.train.Example.") from None
      for key in keys:
        name, spec = by_key[key]
        values = (feature[name].int64_list.value if name in feature else
                  None if spec.default_value is None else
                  [int(v) for v in np.ravel(spec.default_value)])
        if not values:
          raise DataError(f"record {index} of {path} has no int64 feature"
                          f" {name!r} (the label); fix the schema's label or"
                          " its dtype.")
        largest[key] = max(largest[key], max(values))
    return largest, index + 1

  return find_largest


def _counts_and_classes(paths, labels: dict | None, single: bool,
                        num_classes):
  """(counts, num_classes, warnings): from the counts files when current.

  Classes per label: max + 1 of integer labels (found with the counts, and
  recorded beside them), the last dimension of float labels.
  """
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  wanted = {} if labels is None or num_classes is not None else {
      name: spec for name, spec in labels.items() if spec.dtype == tf.int64}
  counts, largest, warnings = tfrecord_files.recorded_counts(
      paths, largest_keys=[_label_key(n, s) for n, s in wanted.items()],
      find_largest=_largest_labels(wanted))
  if labels is None or num_classes is not None:
    return counts, num_classes, warnings
  result = {name: (largest[_label_key(name, spec)] + 1 if name in wanted else
                   int(spec.shape[-1]) if len(spec.shape) else 1)
            for name, spec in labels.items()}
  return (counts, next(iter(result.values())) if single else result,
          warnings)


def from_tfrecords(file_pattern, *, features: dict | None = None, label=None,
                   parse_fn=None, input_shape=None, num_classes=None,
                   scale: float | None = None, preprocess=None,
                   name: str | None = None, shuffle: bool = True,
                   cache: bool = False, shuffle_buffer: int = 10_000,
                   counts: list[int] | None = None):
  """TFRecord files of `tf.train.Example`s as one split (streamed).

  Either `features` + `label` or `parse_fn`. With `features`, numeric
  features become float32 (times `scale`, default 1: nothing is rescaled),
  strings pass through; integer labels become int32.

  Args:
    file_pattern: A file, a glob pattern or a list of files (sorted).
    features: Dict name -> `tf.io.FixedLenFeature` of the inputs; one name
      gives a plain tensor, several a dict of named inputs.
    label: The label's feature name, a list of names (named outputs), or a
      dict name -> `tf.io.FixedLenFeature`. A name that is a key of
      `features` takes its spec from there (and is not an input); others
      are scalar int64 class indices.
    parse_fn: Instead of the schema: `parse_fn(serialized) -> (x, y)`.
    input_shape: Overrides the shape inferred from the specs (or, with
      `parse_fn`, from tracing it on first use: not while the run is
      planned, since tracing starts TensorFlow's runtime).
    num_classes: Default: max + 1 of integer labels (read from the files;
      schema only), the last dimension of float labels; None for
      `parse_fn`.
    scale: Factor for numeric features (schema only).
    preprocess: As in `from_arrays`; its seed is unique per (run seed,
      position in the pipeline's stream, pipeline).
    name: Name for logs.
    shuffle: Shuffle files and records each epoch.
    cache: Keep parsed records in memory after the first pass.
    shuffle_buffer: Records shuffled together (one block).
    counts: Records per file if known. Else they are taken from the
      `record_counts.json` beside the files while each file's size and
      modification time are the recorded ones (`python -m
      launch.write_tfrecords` writes it), or counted from the record
      headers, without TensorFlow's runtime, and recorded there when the
      folder is writable. The largest integer label (for `num_classes`)
      is recorded with them: a start reads no record.

  Returns:
    A `TFRecordSource` (not indexable: no `split`).

  Raises:
    DataError: If the files or the schema are unusable.
  """
  from datasets import tfrecord_stream  # pylint: disable=import-outside-toplevel
  paths = _paths(file_pattern)
  if (parse_fn is None) == (features is None):
    raise DataError("give from_tfrecords either features and label, or"
                    " parse_fn.")
  scale = 1.0 if scale is None else float(scale)
  labels, single = None, False
  if parse_fn is None:
    if not isinstance(features, dict) or not features:
      raise DataError("features must be a dict name -> tf.io.FixedLenFeature.")
    inputs, labels, single = _label_specs(features, label)
    if not inputs:
      raise DataError("features holds only the label; give at least one"
                      " input feature.")
    parse_fn = _schema_parser(inputs, labels, single, scale)
    if input_shape is None:
      shapes = {k: tuple(int(n) for n in s.shape) for k, s in inputs.items()}
      input_shape = next(iter(shapes.values())) if len(shapes) == 1 else shapes
  warnings = ()
  if not counts or (labels is not None and num_classes is None):
    found, num_classes, warnings = _counts_and_classes(paths, labels, single,
                                                       num_classes)
    counts = counts or found
  name = name or os.path.basename(paths[0])
  files = f"{len(paths)} file{'s' if len(paths) > 1 else ''}"
  done = ("via parse_fn" if features is None else "not rescaled"
          if scale == 1.0 else f"scaled by {source_lib.format_scale(scale)}")
  description = (f"{source_lib.format_count(sum(counts))} TFRecord examples"
                 f" in {files}, features {done}, {num_classes} classes")
  source = tfrecord_stream.TFRecordSource(
      name=name, paths=paths, counts=counts, parse=parse_fn,
      input_shape=input_shape, num_classes=num_classes,
      infer_input_shape=input_shape is None and features is None,
      description=description, feature_scale=scale, preprocess=preprocess,
      shuffle=shuffle, cache=cache, shuffle_buffer=shuffle_buffer)
  source.warnings = tuple(source.warnings) + warnings
  if features is not None and single:  # The schema says the label's kind.
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    spec = next(iter(labels.values()))
    source.task = ("regression" if spec.dtype != tf.int64
                   and not len(spec.shape) else "classification")
    if source.task == "regression":
      source.description = description.replace(f"{num_classes} classes",
                                                "regression targets")
  return source


def read_schema(path: str) -> dict:
  """`from_tfrecords` keyword arguments from a `schema.json`.

  Raises:
    DataError: If the file is missing or malformed.
  """
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  def spec(entry, where):
    if not isinstance(entry, dict) or entry.get("dtype") not in _DTYPES:
      raise DataError(f"{path}: {where} needs a dtype of"
                      f" {', '.join(_DTYPES)} and a shape.")
    return tf.io.FixedLenFeature([int(n) for n in entry.get("shape", [])],
                                 tf.as_dtype(entry["dtype"]))

  try:
    with open(path, encoding="utf-8") as stream:
      schema = json.load(stream)
    features = {name: spec(entry, f"feature {name!r}")
                for name, entry in schema["features"].items()}
    label = schema["label"]
    if isinstance(label, dict):
      label = {name: spec(entry, f"label {name!r}")
               for name, entry in label.items()}
  except FileNotFoundError:
    raise DataError(f"{path} does not exist; TFRecord files need a"
                    f" {SCHEMA_FILE} describing their features.") from None
  except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
    raise DataError(f"{path} is not a valid {SCHEMA_FILE}"
                    f" ({type(error).__name__}: {error}).") from None
  return dict(features=features, label=label,
              num_classes=schema.get("num_classes"))
