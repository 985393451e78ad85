"""In-memory array sources: digits, MNIST, synthetic and user arrays.

A source holds raw features (uint8 where the data is 8-bit) and integer labels
in host memory; the pipeline scales features to float32 in its parallel map so
a 60,000-image MNIST stays 47 MB instead of 188 MB.
"""

import dataclasses
import os
import zipfile

import numpy as np

from datasets import config as config_lib

# The digits split is fixed forever so that accuracies stay comparable: a
# permutation from seed 0, the first 1,437 examples train, the last 360 test.
DIGITS_SPLIT_SEED = 0
DIGITS_TEST_EXAMPLES = 360


class DataError(ValueError):
  """A dataset cannot be loaded; the message is one sentence for the user."""


Features = np.ndarray | dict[str, np.ndarray]


def example_shapes(features: Features):
  """Shape of one example: a tuple, or a dict of tuples for named inputs."""
  if isinstance(features, dict):
    return {name: tuple(array.shape[1:]) for name, array in features.items()}
  return tuple(features.shape[1:])


def num_rows(features: Features) -> int:
  """Number of examples in an array or in each array of a dict."""
  if isinstance(features, dict):
    return len(next(iter(features.values())))
  return len(features)


def take_rows(features: Features, rows) -> Features:
  """Rows (an index array or slice) of an array or of each array of a dict."""
  if isinstance(features, dict):
    return {name: array[rows] for name, array in features.items()}
  return features[rows]


@dataclasses.dataclass(frozen=True, eq=False)
class ArraySource:
  """Train and eval arrays of one dataset.

  Attributes:
    name: Human-readable name, written into logs.
    train_features: Array of shape [N, ...], or a dict of such arrays for a
      model with several named inputs.
    train_labels: Integer (or float, for regression) array of shape [N], or
      a dict of them, one per named output of a multi-output model.
    eval_features: Like `train_features` with M examples and the same
      trailing shapes.
    eval_labels: Like `train_labels` with M examples.
    num_classes: Number of label values (a dict per output for dict labels).
    feature_scale: Factor the pipeline multiplies float32 features by.
  """

  name: str
  train_features: Features
  train_labels: Features
  eval_features: Features
  eval_labels: Features
  num_classes: int | dict[str, int]
  feature_scale: float = 1.0

  def __post_init__(self):
    for split in ("train", "eval"):
      features = getattr(self, f"{split}_features")
      labels = getattr(self, f"{split}_labels")
      if isinstance(features, dict) and (
          not features or len({len(a) for a in features.values()}) != 1):
        raise DataError(f"{self.name}: the {split} inputs are empty or differ"
                        " in their numbers of examples.")
      if num_rows(features) != num_rows(labels):
        raise DataError(
            f"{self.name}: {split} features have {num_rows(features)} examples"
            f" but labels have {num_rows(labels)}.")
      if not num_rows(labels):
        raise DataError(f"{self.name}: the {split} split is empty.")
    train_shape = example_shapes(self.train_features)
    eval_shape = example_shapes(self.eval_features)
    if train_shape != eval_shape:
      raise DataError(
          f"{self.name}: train features have shape {train_shape} but eval"
          f" features {eval_shape}.")

  @property
  def input_shape(self) -> tuple[int, ...] | dict[str, tuple[int, ...]]:
    return example_shapes(self.train_features)

  @property
  def num_train_examples(self) -> int:
    return num_rows(self.train_labels)

  @property
  def num_eval_examples(self) -> int:
    return num_rows(self.eval_labels)


def from_arrays(train_features: np.ndarray, train_labels: np.ndarray,
                eval_features: np.ndarray, eval_labels: np.ndarray, *,
                num_classes: int | None = None, feature_scale: float = 1.0,
                name: str = "arrays") -> ArraySource:
  """Wraps user arrays as a source.

  Args:
    train_features: Training features, shape [N, ...].
    train_labels: Training labels, shape [N]: integer classes, or floats
      for regression.
    eval_features: Eval features, shape [M, ...].
    eval_labels: Eval labels, shape [M].
    num_classes: Number of classes; by default 1 + the largest label (1 for
      float labels).
    feature_scale: Factor applied to features after the cast to float32.
    name: Name used in logs.

  Returns:
    The source.

  Raises:
    DataError: If the arrays do not fit together.
  """
  train_labels, eval_labels = np.asarray(train_labels), np.asarray(eval_labels)
  # Float labels are regression targets; anything else is a class index.
  label_type = (np.float32 if np.issubdtype(train_labels.dtype, np.floating)
                else np.int32)
  train_labels = train_labels.astype(label_type)
  eval_labels = eval_labels.astype(label_type)
  if num_classes is None:
    num_classes = (1 if label_type is np.float32 else
                   int(max(train_labels.max(), eval_labels.max())) + 1)
  as_arrays = lambda f: ({k: np.asarray(v) for k, v in f.items()}
                         if isinstance(f, dict) else np.asarray(f))
  return ArraySource(name, as_arrays(train_features), train_labels,
                     as_arrays(eval_features), eval_labels, num_classes,
                     feature_scale)


def load_digits() -> ArraySource:
  """scikit-learn's bundled 8x8 digits (1,797 images), works offline."""
  from sklearn import datasets as sklearn_datasets  # Slow import; load lazily.
  digits = sklearn_datasets.load_digits()
  features = digits.images.astype(np.uint8)[..., np.newaxis]  # Values 0..16.
  labels = digits.target.astype(np.int32)
  order = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(len(labels))
  train, test = order[:-DIGITS_TEST_EXAMPLES], order[-DIGITS_TEST_EXAMPLES:]
  return ArraySource("digits", features[train], labels[train], features[test],
                     labels[test], num_classes=10, feature_scale=1.0 / 16)


def load_mnist(data_dir: str | None) -> ArraySource:
  """MNIST from `data_dir/mnist.npz`, or from the Keras cache (may download).

  Args:
    data_dir: Directory with `mnist.npz` (keys x_train, y_train, x_test,
      y_test), or None for `keras.datasets.mnist.load_data()`.

  Returns:
    The source, features uint8 of shape [N, 28, 28, 1].

  Raises:
    DataError: If the file is missing or unreadable.
  """
  if data_dir is None:
    try:
      import keras  # Only this path needs Keras; keep the import local.
      (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    except Exception as error:  # Network and cache errors of many kinds.
      raise DataError(
          "could not load MNIST through Keras (no network?); download"
          " mnist.npz and pass its directory with --data_dir"
          f" ({type(error).__name__}).") from error
  else:
    path = os.path.join(data_dir, "mnist.npz")
    if not os.path.isfile(path):
      raise DataError(f"--data_dir={data_dir} holds no mnist.npz.")
    try:
      with np.load(path) as archive:
        x_train, y_train = archive["x_train"], archive["y_train"]
        x_test, y_test = archive["x_test"], archive["y_test"]
    except (OSError, ValueError, KeyError, EOFError,
            zipfile.BadZipFile) as error:
      raise DataError(f"{path} is not a readable MNIST archive"
                      f" ({type(error).__name__}: {error}).") from error
  return ArraySource("mnist", x_train[..., np.newaxis], y_train.astype(np.int32),
                     x_test[..., np.newaxis], y_test.astype(np.int32),
                     num_classes=10, feature_scale=1.0 / 255)


def make_synthetic(*, num_examples: int = 60_000, num_eval_examples: int = 10_000,
                   shape: tuple[int, ...] = (28, 28, 1), num_classes: int = 10,
                   seed: int = 0) -> ArraySource:
  """Learnable random data: uint8 noise around one prototype per class.

  Args:
    num_examples: Training examples.
    num_eval_examples: Eval examples.
    shape: Feature shape of one example.
    num_classes: Number of classes.
    seed: Seed of the generator; equal seeds give equal data.

  Returns:
    The source, features uint8 scaled by 1/255 in the pipeline.
  """
  rng = np.random.default_rng(seed)
  prototypes = rng.integers(0, 256, size=(num_classes, *shape), dtype=np.int16)
  total = num_examples + num_eval_examples
  labels = rng.integers(0, num_classes, size=total, dtype=np.int32)
  noise = rng.integers(-96, 97, size=(total, *shape), dtype=np.int16)
  features = np.clip(prototypes[labels] + noise, 0, 255).astype(np.uint8)
  return ArraySource("synthetic", features[:num_examples],
                     labels[:num_examples], features[num_examples:],
                     labels[num_examples:], num_classes=num_classes,
                     feature_scale=1.0 / 255)


def with_validation_split(source: ArraySource, fraction: float) -> ArraySource:
  """Holds out the last `fraction` of the training examples for evaluation.

  As in `keras.Model.fit(validation_split=...)`, the held-out examples are the
  last ones, taken before any shuffling, so the split is the same every run.

  Args:
    source: The source whose train split is divided.
    fraction: In (0, 1).

  Returns:
    A source whose eval split is the held-out part.

  Raises:
    DataError: If either part would be empty.
  """
  held_out = int(round(source.num_train_examples * fraction))
  if not 0 < held_out < source.num_train_examples:
    raise DataError(
        f"--validation_split={fraction} leaves an empty train or eval split of"
        f" {source.name}'s {source.num_train_examples} training examples.")
  cut = source.num_train_examples - held_out
  return dataclasses.replace(
      source, train_features=take_rows(source.train_features, slice(cut)),
      train_labels=take_rows(source.train_labels, slice(cut)),
      eval_features=take_rows(source.train_features, slice(cut, None)),
      eval_labels=take_rows(source.train_labels, slice(cut, None)))


def load_source(config: config_lib.DataConfig):
  """Loads the dataset `config` names and applies its validation split.

  Args:
    config: The data configuration.

  Returns:
    The source: an `ArraySource`, or a `tfrecord.TFRecordSource`.

  Raises:
    DataError: If the name is unknown or the data cannot be loaded.
  """
  from datasets import variants  # Builds on this module; import it late.
  if config.name == "digits":
    source = load_digits()
  elif config.name == "mnist":
    source = load_mnist(config.data_dir)
  elif config.name == "synthetic":
    source = make_synthetic(num_examples=config.synthetic_examples,
                            num_eval_examples=config.synthetic_eval_examples,
                            shape=config.synthetic_shape,
                            num_classes=config.num_classes, seed=config.seed)
  elif config.name == "digits_halves":
    source = variants.digits_halves(load_digits())
  elif config.name == "digits_two_targets":
    source = variants.digits_two_targets(load_digits())
  elif config.name == "sequences":
    source = variants.make_sequences(seed=config.seed)
  elif config.name == "tfrecord":
    from datasets import tfrecord  # Builds on this module too.
    if config.validation_split:
      raise DataError("--validation_split needs in-memory data; write the"
                      " held-out examples as the eval split of the"
                      " TFRecord files instead.")
    return tfrecord.load(config.data_dir)
  else:
    raise DataError(f"unknown dataset {config.name!r}; choose one of"
                    f" {', '.join(config_lib.DATASET_NAMES)}.")
  if config.validation_split:
    source = with_validation_split(source, config.validation_split)
  return source
