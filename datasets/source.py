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
* `split(fraction, seed=)` -> (train, eval) parts for
  `validation_split`: the last fraction as `keras.Model.fit` for arrays;
  seeded and stratified by class for file sources (see `datasets.splits`).

`IndexedSource` serves any data addressable by row (arrays, files listed in
memory) through `datasets.pipeline`; other kinds subclass `Source` itself.
Nothing here imports TensorFlow at module import time.
"""

import inspect
from typing import Protocol

from datasets import splits
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
    warnings: Sentences a run logs as warnings (e.g. a class that a
      validation split left out of a part, unreadable files skipped).
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
  warnings: tuple[str, ...] = ()

  def split(self, fraction: float, *,
            seed: int = 0) -> tuple["Source", "Source"]:
    """(training part, held-out part) for a validation split.

    Args:
      fraction: The held-out fraction, in (0, 1).
      seed: The run's seed, for sources whose split is seeded.

    Raises:
      DataError: If the source is not indexable or a part would be empty.
    """
    del fraction, seed
    raise DataError(f"{self.name} cannot be split by position; give eval"
                    " data of its own instead of a validation split.")

  def explain_failure(self, error: Exception) -> str | None:
    """One sentence naming the data behind a pipeline `error`, or None.

    Called by a run whose input pipeline failed (e.g. an image file that
    cannot be decoded); None leaves `error` as it is.
    """
    del error
    return None

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
  return num_examples - splits.held_out_count(name, num_examples, fraction)


class IndexedData(Protocol):
  """Examples addressable by row: what `IndexedSource` serves."""

  num_examples: int
  input_shape: object
  num_classes: object
  labels: object  # An array [N] or [N, C], or a dict of them.

  def take(self, rows) -> "IndexedData":
    """The rows `rows` (a slice or an int array) as data of the same kind."""

  def open(self):
    """A `pipeline.Loader`; called inside the dataset function."""

  def describe(self) -> str:
    """One line for `Source.description`."""

  def statistics(self):
    """(mean, variance) of the flat features, or None."""


class IndexedSource(Source):
  """A Source over `IndexedData`: exact resume, replica-independent batches.

  Attributes:
    use_seeded_split: How `split` holds examples out: False (arrays) the
      last fraction, before shuffling, as `keras.Model.fit`; True (file
      sources: CSV, image directories) a split seeded by the run's seed,
      stratified by class for class labels. See `datasets.splits`.
  """

  def __init__(self, data: IndexedData, *, name: str, shuffle: bool = True,
               feature_scale: float = 1.0, standardization=None,
               use_seeded_split: bool = False, warnings=()):
    self.data = data
    self.use_seeded_split = use_seeded_split
    self.warnings = tuple(warnings)
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

  def split(self, fraction: float, *,
            seed: int = 0) -> tuple["IndexedSource", "IndexedSource"]:
    parts = splits.split_rows(
        self.data.labels, self.num_examples, fraction,
        rule="seeded" if self.use_seeded_split else "last", seed=seed,
        name=self.name, class_names=self.class_names)
    made = dict(shuffle=self.shuffle, feature_scale=self.feature_scale,
                use_seeded_split=self.use_seeded_split,
                warnings=self.warnings + parts.warnings)
    train = IndexedSource(self.data.take(parts.train_rows), name=self.name,
                          **made)
    held_out = IndexedSource(
        self.data.take(parts.held_out_rows),
        name=f"{self.name} (validation)",
        standardization=train.standardization, **made)
    # Classes with examples; the model may have more (an empty folder).
    total = parts.num_classes
    if isinstance(self.num_classes, int) and total is not None:
      total = max(total, self.num_classes)
    for part, rows, classes, role in (
        (train, parts.train_rows, parts.train_classes, "training"),
        (held_out, parts.held_out_rows, parts.held_out_classes, "held-out")):
      part.num_classes = self.num_classes
      part.class_names = self.class_names
      part.input_format = self.input_format
      of_classes = ("" if classes is None else
                    f" ({classes} of {total} classes)")
      part.description = (
          f"{format_count(len(rows))} {role} examples{of_classes} from"
          f" {self.description} ({parts.summary})")
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

  def explain_failure(self, error: Exception) -> str | None:
    explain = getattr(self.data, "explain_failure", None)
    return explain(error) if explain is not None else None


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
