"""`from_arrays`: in-memory numpy arrays as a `Source`.

Raw arrays stay in host memory in their own dtype (uint8 images stay one
byte per value); each input pipeline decodes them to float32 once, scaled,
as a TensorFlow constant: that is the cache, and a batch is a gather.
"""

import numpy as np

from datasets import labels as labels_lib
from datasets import source as source_lib
from datasets.errors import DataError

UINT8_SCALE = 1 / 255


def _as_structure(value, what: str):
  if isinstance(value, dict):
    if not value:
      raise DataError(f"{what} is an empty dict; give at least one array.")
    return {str(key): np.asarray(array) for key, array in value.items()}
  return np.asarray(value)


def _rows(structure) -> list[int]:
  arrays = structure.values() if isinstance(structure, dict) else [structure]
  return [len(array) if array.ndim else 0 for array in arrays]


def normalize_labels(labels, task: str = "auto"):
  """Labels as int32 class indices or float32 targets, and their classes.

  By dtype, unless `task` says otherwise: integer (and boolean) labels
  become int32 indices with `max + 1` classes; float labels of shape [N]
  are regression targets (1 class); float labels [N, C] (e.g. one-hot)
  pass through with C classes. task="regression" makes any numeric labels
  float32 targets; task="classification" takes float [N] labels holding
  whole numbers as class indices.

  Returns:
    (labels, num_classes, task), each a dict for dict labels.
  """
  if isinstance(labels, dict):
    triples = {name: normalize_labels(array, task)
               for name, array in labels.items()}
    return tuple({name: triple[i] for name, triple in triples.items()}
                 for i in range(3))
  if not (np.issubdtype(labels.dtype, np.number) or labels.dtype == bool):
    raise DataError(f"labels of dtype {labels.dtype} are neither integer"
                    " classes nor float targets; give text labels to"
                    " from_csv, or map them to class indices 0, 1, ....")
  is_float = np.issubdtype(labels.dtype, np.floating)
  if task == "regression":
    labels = labels.astype(np.float32)
    return labels, (int(labels.shape[-1]) if labels.ndim > 1 else 1), task
  if is_float and task == "classification" and labels.ndim == 1:
    if labels.size and not np.all(labels == np.round(labels)):
      raise DataError("task='classification' needs whole-number labels (class"
                      " indices), but the float labels have fractions; give"
                      " task='regression'.")
  elif is_float:
    labels = labels.astype(np.float32)
    if labels.ndim > 1 and labels.shape[-1] > 1:
      return labels, int(labels.shape[-1]), "classification"
    return labels, 1, "regression"
  if labels.size and labels.min() < 0:
    raise DataError(f"integer labels must be class indices from 0, but one"
                    f" is {labels.min()}; renumber them, or give"
                    " task='regression'.")
  labels = labels.astype(np.int32)
  return (labels, int(labels.max()) + 1 if labels.size else 0,
          "classification")


def _scales(features, scale):
  """Per-array factors: uint8 -> 1/255 by default, others 1; or `scale`."""

  def one(array):
    if scale is not None:
      return float(scale)
    return UINT8_SCALE if array.dtype == np.uint8 else 1.0

  if isinstance(features, dict):
    return {name: one(array) for name, array in features.items()}
  return one(features)


class ArrayData:
  """Features and labels in memory; see `source_lib.IndexedData`."""

  def __init__(self, features, labels, num_classes, scales, preprocess=None,
               task=None, class_names=None):
    self.features, self.labels = features, labels
    self.num_classes, self.scales = num_classes, scales
    self.task, self.class_names = task, class_names
    self.preprocess = preprocess
    self.takes_seed = (preprocess is not None
                       and source_lib.preprocess_takes_seed(preprocess))
    self.num_examples = _rows(labels)[0]
    self.input_shape = (
        {name: tuple(a.shape[1:]) for name, a in features.items()}
        if isinstance(features, dict) else tuple(features.shape[1:]))

  def take(self, rows: slice) -> "ArrayData":
    cut = lambda s: ({k: a[rows] for k, a in s.items()}
                     if isinstance(s, dict) else s[rows])
    return ArrayData(cut(self.features), cut(self.labels), self.num_classes,
                     self.scales, self.preprocess, self.task,
                     self.class_names)

  def is_tabular(self) -> bool:
    return (not isinstance(self.features, dict) and self.features.ndim == 2
            and np.issubdtype(self.features.dtype, np.floating))

  def statistics(self):
    """Mean and variance of tabular float features, else None."""
    if not self.is_tabular():
      return None
    flat = self.features.astype(np.float64) * self.scales
    return (flat.mean(axis=0).astype(np.float32),
            flat.var(axis=0).astype(np.float32))

  def describe(self) -> str:
    arrays = (self.features if isinstance(self.features, dict)
              else {"": self.features})
    parts = []
    for name, array in arrays.items():
      scale = (self.scales[name] if isinstance(self.scales, dict)
               else self.scales)
      shape = source_lib.format_shape(array.shape[1:])
      done = (f"scaled by {source_lib.format_scale(scale)}" if scale != 1.0
              else "not rescaled")
      parts.append(f"{name + ' ' if name else ''}{shape} {array.dtype}"
                   f" features {done}")
    classes = self.num_classes
    if self.task == "regression":
      kind = "regression targets"
    else:
      kind = f"{classes} classes"
      if self.class_names:
        kind += f" ({labels_lib.format_names(self.class_names)})"
    return (f"{source_lib.format_count(self.num_examples)} examples of"
            f" {'; '.join(parts)}; {kind}"
            if not isinstance(classes, dict) else
            f"{source_lib.format_count(self.num_examples)} examples of"
            f" {'; '.join(parts)}; outputs {classes}")

  def open(self):
    """Decodes the split to float32 once (the cache); gathers rows."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from datasets import pipeline  # pylint: disable=import-outside-toplevel

    def decode(array, scale):
      decoded = tf.cast(tf.constant(array), tf.float32)
      return decoded * scale if scale != 1.0 else decoded

    if isinstance(self.features, dict):
      cache = {k: decode(a, self.scales[k]) for k, a in self.features.items()}
    else:
      cache = decode(self.features, self.scales)
    labels = tf.nest.map_structure(tf.constant, self.labels)
    gather = lambda s, rows: tf.nest.map_structure(
        lambda t: tf.gather(t, rows), s)
    if self.preprocess is None:
      return pipeline.Loader(
          load_batch=lambda rows, seeds: (gather(cache, rows),
                                          gather(labels, rows)))
    return pipeline.Loader(load_example=lambda row, seed: tuple(
        source_lib.apply_preprocess(self.preprocess, self.takes_seed,
                                    gather(cache, row), gather(labels, row),
                                    seed)))


def from_arrays(features, labels, *, task: str = "auto",
                scale: float | None = None, preprocess=None,
                name: str = "arrays", shuffle: bool = True,
                class_names=None) -> source_lib.IndexedSource:
  """In-memory arrays as one split (training or eval data).

  Nothing is rescaled behind your back: float features are used as given;
  uint8 features (pixels 0..255) are multiplied by 1/255 by default, which
  `description` says; `scale=1.0` keeps them, `scale=x` multiplies every
  feature array by x. Features are decoded to float32 once per input
  pipeline.

  Args:
    features: An array [N, ...], or a dict name -> array [N, ...] for a
      model with named inputs.
    labels: An array [N] or [N, C], or a dict name -> array for a model
      with named outputs. Integer labels are class indices (int32,
      `num_classes` = max + 1); float [N] labels are regression targets
      (1 class); float [N, C] labels (e.g. one-hot) pass through unchanged
      (C classes).
    task: "auto" (by dtype, as above), "classification" (float [N] labels
      must then be whole numbers) or "regression" (any numeric labels are
      float32 targets).
    scale: Factor for the float32 features; None: 1/255 for uint8, else 1.
    preprocess: Optional function run per example in the pipeline's
      parallel map: `preprocess(features, label)` or `preprocess(features,
      label, seed)` returning `(features, label)`. `seed` is a [2] int64
      tensor unique per (run seed, position in the stream, epoch) for
      `tf.image.stateless_random_*` / `tf.random.stateless_*` ops; eval
      examples get a fixed seed. Stateful random ops (e.g.
      `tf.image.random_flip_left_right`) are not reproducible.
    name: Name for logs.
    shuffle: Whether training epochs are shuffled.
    class_names: Optional names of the classes 0, 1, ... (kept as
      `class_names`, and in the export's metadata).

  Returns:
    An indexable Source: exact resume, same global batch on any number of
    replicas; `split` holds out the last fraction, before shuffling, as
    `keras.Model.fit(validation_split=)` (with a warning for a class
    either part lacks).

  Raises:
    DataError: If the arrays are empty or differ in their numbers of rows.
  """
  features = _as_structure(features, "features")
  labels = _as_structure(labels, "labels")
  lengths = _rows(features) + _rows(labels)
  if len(set(lengths)) != 1:
    raise DataError(f"features and labels must have the same number of rows,"
                    f" but they have {sorted(set(lengths))}.")
  if not lengths[0]:
    raise DataError("features and labels hold no examples.")
  for array in (features.values() if isinstance(features, dict)
                else [features]):
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
      raise DataError(f"features of dtype {array.dtype} are not numbers.")
  labels, num_classes, task = normalize_labels(labels,
                                               labels_lib.check_task(task))
  if isinstance(task, dict):  # Per output: the losses say the tasks.
    task = None
  if class_names is not None:
    class_names = [str(name) for name in class_names]
    if task != "classification" or len(class_names) < num_classes:
      raise DataError(f"class_names names {len(class_names)} classes, but the"
                      f" labels are {task or 'several outputs'} with"
                      f" {num_classes} classes.")
  scales = _scales(features, scale)
  uniform = set(scales.values()) if isinstance(scales, dict) else {scales}
  data = ArrayData(features, labels, num_classes, scales, preprocess, task,
                   class_names)
  return source_lib.IndexedSource(
      data, name=name, shuffle=shuffle,
      feature_scale=uniform.pop() if len(uniform) == 1 else 1.0)
