"""The built-in datasets by name, each a (train, eval) pair of Sources.

* `digits`: scikit-learn's 1,797 8x8 digits (offline), uint8 0..16 scaled
  by 1/16; a fixed split: a permutation from seed 0, the first 1,437 train,
  the last 360 eval, so accuracies stay comparable.
* `mnist`: `data_dir/mnist.npz` (keys x_train, y_train, x_test, y_test) or
  the Keras cache; uint8 pixels scaled by 1/255, float pixels used as they
  are (already scaled by whoever saved them).
* `synthetic`: learnable uint8 noise around one prototype per class.
* `digits_halves`: two named inputs, `input_1` the top half of a digits
  image (32 pixels) and `input_2` the bottom half; label 1 for 5-9.
* `digits_two_targets`: digits images with two named outputs, `digit`
  (10 classes) and `large` (1 for the digits 5-9).
* `sequences`: 16 time steps of one feature in [0, 1); the label (4
  classes) is the quarter of the sequence with the largest sum.
* `tfrecord`: a directory written by `python -m launch.write_tfrecords`.
"""

import os
import zipfile

import numpy as np

from datasets import arrays
from datasets import config as config_lib
from datasets.errors import DataError, argument

DATASET_NAMES = config_lib.DATASET_NAMES
DIGITS_SPLIT_SEED = 0
DIGITS_TEST_EXAMPLES = 360
DIGITS_SCALE = 1 / 16
SEQUENCE_LENGTH = 16
SEQUENCE_CLASSES = 4


def _pair(name, train_x, train_y, eval_x, eval_y, *, scale=None, shuffle=True):
  make = lambda x, y, full_name: arrays.from_arrays(
      x, y, scale=scale, name=full_name, shuffle=shuffle)
  train = make(train_x, train_y, name)
  held_out = make(eval_x, eval_y, f"{name} (eval)")
  held_out.num_classes = train.num_classes  # Eval may lack the largest class.
  return train, held_out


def digits_arrays():
  """(train features, train labels, eval features, eval labels), uint8."""
  from sklearn import datasets as sklearn_datasets  # Slow import; load lazily.
  digits = sklearn_datasets.load_digits()
  features = digits.images.astype(np.uint8)[..., np.newaxis]  # Values 0..16.
  labels = digits.target.astype(np.int32)
  order = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(len(labels))
  train, test = order[:-DIGITS_TEST_EXAMPLES], order[-DIGITS_TEST_EXAMPLES:]
  return features[train], labels[train], features[test], labels[test]


def _halves(images: np.ndarray) -> dict[str, np.ndarray]:
  flat = images.reshape(len(images), -1)
  middle = flat.shape[1] // 2
  return {"input_1": flat[:, :middle], "input_2": flat[:, middle:]}


def _two_targets(labels: np.ndarray) -> dict[str, np.ndarray]:
  return {"digit": labels, "large": (labels >= 5).astype(np.int32)}


def load_digits(variant: str = "digits", shuffle: bool = True):
  """digits, digits_halves or digits_two_targets as (train, eval)."""
  x, y, ex, ey = digits_arrays()
  if variant == "digits_halves":
    x, ex = _halves(x), _halves(ex)
    y, ey = (y >= 5).astype(np.int32), (ey >= 5).astype(np.int32)
  elif variant == "digits_two_targets":
    y, ey = _two_targets(y), _two_targets(ey)
  return _pair(variant, x, y, ex, ey, scale=DIGITS_SCALE, shuffle=shuffle)


def mnist_arrays(data_dir: str | None):
  """(x_train, y_train, x_test, y_test) of mnist.npz or the Keras cache."""
  if data_dir is None:
    try:
      import keras  # pylint: disable=import-outside-toplevel
      (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    except Exception as error:  # Network and cache errors of many kinds.
      raise DataError(
          "could not load MNIST through Keras (no network?); download"
          f" mnist.npz and pass its directory as {argument('data_dir')}"
          f" ({type(error).__name__}).") from error
    return x_train, y_train, x_test, y_test
  path = os.path.join(data_dir, "mnist.npz")
  if not os.path.isfile(path):
    raise DataError(f"{argument('data_dir')} {data_dir} holds no mnist.npz.")
  try:
    with np.load(path, allow_pickle=False) as archive:
      return tuple(archive[key] for key in
                   ("x_train", "y_train", "x_test", "y_test"))
  except (OSError, ValueError, KeyError, EOFError,
          zipfile.BadZipFile) as error:
    raise DataError(f"{path} is not a readable MNIST archive"
                    f" ({type(error).__name__}: {error}).") from error


def load_mnist(data_dir: str | None, shuffle: bool = True):
  """MNIST as (train, eval): uint8 scaled by 1/255, floats kept as saved."""
  x, y, ex, ey = mnist_arrays(data_dir)
  add_channel = lambda a: a[..., np.newaxis] if a.ndim == 3 else a
  # scale=None: 1/255 for uint8 pixels, nothing for float pixels.
  return _pair("mnist", add_channel(x), y.astype(np.int32), add_channel(ex),
               ey.astype(np.int32), shuffle=shuffle)


_DEFAULTS = config_lib.DataConfig()


def make_synthetic(*, num_examples: int = _DEFAULTS.synthetic_examples,
                   num_eval_examples: int = _DEFAULTS.synthetic_eval_examples,
                   shape: tuple[int, ...] = _DEFAULTS.synthetic_shape,
                   num_classes: int = _DEFAULTS.num_classes,
                   seed: int = 0, shuffle: bool = True):
  """Learnable uint8 data as (train, eval); equal seeds give equal data."""
  rng = np.random.default_rng(seed)
  prototypes = rng.integers(0, 256, size=(num_classes, *shape), dtype=np.int16)
  total = num_examples + num_eval_examples
  labels = rng.integers(0, num_classes, size=total, dtype=np.int32)
  noise = rng.integers(-96, 97, size=(total, *shape), dtype=np.int16)
  features = np.clip(prototypes[labels] + noise, 0, 255).astype(np.uint8)
  train, held_out = _pair(
      "synthetic", features[:num_examples], labels[:num_examples],
      features[num_examples:], labels[num_examples:], shuffle=shuffle)
  train.num_classes = held_out.num_classes = num_classes
  return train, held_out


def make_sequences(*, num_examples: int = 8_000, num_eval_examples: int = 1_000,
                   seed: int = 0, shuffle: bool = True):
  """Float sequences [N, 16, 1] as (train, eval)."""
  rng = np.random.default_rng(seed)
  total = num_examples + num_eval_examples
  values = rng.random((total, SEQUENCE_LENGTH, 1), dtype=np.float32)
  quarters = values.reshape(total, SEQUENCE_CLASSES, -1).sum(axis=2)
  labels = quarters.argmax(axis=1).astype(np.int32)
  train, held_out = _pair(
      "sequences", values[:num_examples], labels[:num_examples],
      values[num_examples:], labels[num_examples:], shuffle=shuffle)
  train.num_classes = held_out.num_classes = SEQUENCE_CLASSES
  return train, held_out


def load(config: config_lib.DataConfig):
  """(train, eval) Sources of the built-in `config.name`.

  With `config.validation_split`, the eval Source is the last fraction of
  the training examples instead of the test split.

  Raises:
    DataError: If the name is unknown or the data cannot be loaded.
  """
  shuffle = config.shuffle
  if config.name in ("digits", "digits_halves", "digits_two_targets"):
    train, held_out = load_digits(config.name, shuffle)
  elif config.name == "mnist":
    train, held_out = load_mnist(config.data_dir, shuffle)
  elif config.name == "synthetic":
    train, held_out = make_synthetic(
        num_examples=config.synthetic_examples,
        num_eval_examples=config.synthetic_eval_examples,
        shape=config.synthetic_shape, num_classes=config.num_classes,
        seed=config.seed, shuffle=shuffle)
  elif config.name == "sequences":
    train, held_out = make_sequences(seed=config.seed, shuffle=shuffle)
  elif config.name == "tfrecord":
    from datasets import tfrecord  # pylint: disable=import-outside-toplevel
    if not config.data_dir:
      raise DataError(f"the tfrecord dataset needs {argument('data_dir')}, a"
                      " directory written by python -m launch.write_tfrecords.")
    if config.validation_split:
      raise DataError("a validation split needs in-memory data; write the"
                      " held-out examples as the eval split of the TFRecord"
                      " files instead.")
    return tfrecord.load_sources(config.data_dir, shuffle=shuffle,
                                 cache=config.cache,
                                 shuffle_buffer=config.shuffle_buffer)
  else:
    raise DataError(f"unknown dataset {config.name!r}; choose one of"
                    f" {', '.join(DATASET_NAMES)}.")
  if config.validation_split:
    train, held_out = train.split(config.validation_split, seed=config.seed)
  return train, held_out
