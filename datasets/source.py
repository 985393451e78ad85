"""`Source`: one split of a dataset, and how it becomes `tf.data` pipelines.

A Source is ONE split (training data or eval data). The launcher only uses
the attributes and three methods of `Source`:

* `train_dataset_fn(global_batch_size=, seed=, start_step=)` -> a function
  from `tf.distribute.InputContext` to an infinite dataset of per-replica
  `(features, labels)` batches; the batch of step `s` depends only on
  (seed, s), so a restart at `start_step=s` continues exactly.
* `eval_dataset_fn(global_batch_size=, num_input_pipelines=, padded=)` ->
  `(dataset_fn, steps)` covering every example exactly once (see
  `datasets.pipeline.create_eval_dataset_fn` for padded and unpadded).
* `split(fraction)` -> (train, eval) as `keras.Model.fit(validation_split=)`.

`IndexedSource` serves any data addressable by row (arrays, files listed in
memory) through `datasets.pipeline`; other kinds subclass `Source` itself.
Nothing here imports TensorFlow at module import time.
"""

import inspect
from typing import Protocol

from datasets.errors import DataError


class Source:
  """One split of user data.

  Attributes:
    name: Name for logs.
    description: One line saying what the source holds and did to it.
    num_examples: Examples in the split; None if unknown.
    input_shape: Shape of one example's features: a tuple, or a dict
      name -> tuple for named inputs; None if unknown.
    num_classes: An int (1 for float regression labels), a dict per named
      output, or None if unknown.
    standardization: None, or (mean, variance) float32 arrays over the flat
      features of the training split (tabular sources only).
    feature_scale: The factor raw numeric features were multiplied by (for
      prediction on raw inputs); 1.0 if none or not applicable.
    task: "classification", "regression", or None if unknown (several
      outputs, or a source that does not say).
    class_names: Names of the classes 0, 1, ... (text labels, image
      folders), or None.
    input_format: None, or how files for prediction are read, as JSON:
      {"kind": "csv", "feature_names": [...], "label_column": name} or
      {"kind": "images", "image_size": [h, w], "channels": c}.
  """

  name: str = "source"
  description: str = ""
  num_examples: int | None = None
  input_shape = None
  num_classes = None
  standardization = None
  feature_scale: float = 1.0
  task: str | None = None
  class_names: list[str] | None = None
  input_format: dict | None = None

  def split(self, fraction: float) -> tuple["Source", "Source"]:
    """The first and the last `fraction` of the examples (before shuffling).

    Raises:
      DataError: If the source is not indexable or a part would be empty.
    """
    raise DataError(f"{self.name} cannot be split by position; give eval"
                    " data of its own instead of a validation split.")

  def train_dataset_fn(self, *, global_batch_size: int, seed: int,
                       start_step: int = 0):
    raise NotImplementedError

  def eval_dataset_fn(self, *, global_batch_size: int,
                      num_input_pipelines: int = 1, padded: bool = True):
    raise NotImplementedError

  def __repr__(self) -> str:
    return f"<{type(self).__name__} {self.name}: {self.description}>"


def check_split_fraction(name: str, num_examples: int,
                         fraction: float) -> int:
  """The first row of the held-out part, or DataError if a part is empty."""
  held_out = int(round(num_examples * fraction))
  if not 0 < fraction < 1 or not 0 < held_out < num_examples:
    raise DataError(
        f"a validation split of {fraction} leaves an empty train or eval"
        f" part of {name}'s {num_examples} examples.")
  return num_examples - held_out


class IndexedData(Protocol):
  """Examples addressable by row: what `IndexedSource` serves."""

  num_examples: int
  input_shape: object
  num_classes: object

  def take(self, rows: slice) -> "IndexedData":
    """The rows `rows` as data of the same kind."""

  def open(self):
    """A `pipeline.Loader`; called inside the dataset function."""

  def describe(self) -> str:
    """One line for `Source.description`."""

  def statistics(self):
    """(mean, variance) of the flat features, or None."""


class IndexedSource(Source):
  """A Source over `IndexedData`: exact resume, replica-independent batches."""

  def __init__(self, data: IndexedData, *, name: str, shuffle: bool = True,
               feature_scale: float = 1.0, standardization=None):
    self.data = data
    self.name = name
    self.shuffle = shuffle
    self.feature_scale = feature_scale
    self.num_examples = data.num_examples
    self.input_shape = data.input_shape
    self.num_classes = data.num_classes
    self.description = data.describe()
    self.class_names = getattr(data, "class_names", None)
    self.task = getattr(data, "task", None)
    self.input_format = getattr(data, "input_format", None)
    self.standardization = (data.statistics() if standardization is None
                            else standardization)

  def split(self, fraction: float) -> tuple["IndexedSource", "IndexedSource"]:
    cut = check_split_fraction(self.name, self.num_examples, fraction)
    train = IndexedSource(self.data.take(slice(cut)), name=self.name,
                          shuffle=self.shuffle,
                          feature_scale=self.feature_scale)
    held_out = IndexedSource(
        self.data.take(slice(cut, None)), name=f"{self.name} (validation)",
        shuffle=self.shuffle, feature_scale=self.feature_scale,
        standardization=train.standardization)
    held_out.num_classes = train.num_classes = self.num_classes
    held_out.input_format = train.input_format = self.input_format
    count = self.num_examples
    train.description = (f"the first {format_count(cut)} of"
                          f" {self.description}")
    held_out.description = (f"the last {format_count(count - cut)} of"
                            f" {self.description}")
    return train, held_out

  def train_dataset_fn(self, *, global_batch_size: int, seed: int,
                       start_step: int = 0):
    from datasets import pipeline  # pylint: disable=import-outside-toplevel
    return pipeline.create_train_dataset_fn(
        self.num_examples, self.data.open,
        global_batch_size=global_batch_size, seed=seed,
        start_step=start_step, shuffle=self.shuffle)

  def eval_dataset_fn(self, *, global_batch_size: int,
                      num_input_pipelines: int = 1, padded: bool = True):
    del num_input_pipelines  # Indexable: sharded by index arithmetic.
    from datasets import pipeline  # pylint: disable=import-outside-toplevel
    return pipeline.create_eval_dataset_fn(
        self.num_examples, self.data.open,
        global_batch_size=global_batch_size, padded=padded)


def preprocess_takes_seed(preprocess) -> bool:
  """Whether `preprocess` is `(features, label, seed)` rather than 2-ary.

  Raises:
    DataError: If it takes neither 2 nor 3 positional arguments.
  """
  if not callable(preprocess):
    raise DataError("preprocess must be a function (features, label) or"
                    " (features, label, seed) returning (features, label).")
  try:
    parameters = list(inspect.signature(preprocess).parameters.values())
  except (TypeError, ValueError):
    return False
  if any(p.kind == p.VAR_POSITIONAL for p in parameters):
    return True
  positional = [p for p in parameters
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
  if len(positional) not in (2, 3):
    raise DataError("preprocess must take (features, label) or (features,"
                    f" label, seed), not {len(positional)} arguments.")
  return len(positional) == 3


def apply_preprocess(preprocess, takes_seed: bool, features, label, seed):
  """Runs the user's `preprocess` on one example."""
  if takes_seed:
    return preprocess(features, label, seed)
  return preprocess(features, label)


def format_count(count: int) -> str:
  return f"{count:,}"


def format_scale(scale: float) -> str:
  """1/255 rather than 0.00392156862745098."""
  if scale and scale < 1:
    inverse = 1 / scale
    if abs(inverse - round(inverse)) < 1e-6:
      return f"1/{round(inverse)}"
  return f"{scale:g}"


def format_shape(shape) -> str:
  if isinstance(shape, dict):
    return ", ".join(f"{name} {format_shape(s)}" for name, s in shape.items())
  return "x".join(str(n) for n in shape) if shape else "scalar"
