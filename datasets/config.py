"""The frozen input configuration that `launch` hands to `datasets`."""

import dataclasses

DATASET_NAMES = ("digits", "mnist", "synthetic", "digits_halves",
                 "digits_two_targets", "sequences", "tfrecord")
# Image directories: (height, width) every image is resized to, as Keras's
# image_dataset_from_directory.
DEFAULT_IMAGE_SIZE = (256, 256)


@dataclasses.dataclass(frozen=True, kw_only=True)
class DataConfig:
  """What to load and how to batch it.

  Attributes:
    name: One of `DATASET_NAMES`.
    data_dir: Directory holding on-disk data (`mnist.npz` for `mnist`, the
      files of `tfrecord`); None lets the mnist loader use (and download
      into) the Keras cache.
    global_batch_size: Examples per training step summed over all replicas.
    seed: Seed of the per-epoch shuffle (and of synthetic data).
    shuffle: Whether training batches are shuffled each epoch.
    validation_split: If > 0, this fraction of the training examples
      becomes the eval split instead of the dataset's test split: the last
      ones for arrays (as `keras.Model.fit`), a split seeded by `seed` and
      stratified by class for files (see `datasets.splits`).
    synthetic_examples: Number of training examples of `synthetic`.
    synthetic_eval_examples: Number of eval examples of `synthetic`.
    synthetic_shape: Feature shape of `synthetic` examples.
    num_classes: Number of classes of `synthetic`.
    cache: tfrecord: keep parsed records in memory after the first pass.
    shuffle_buffer: tfrecord: records in the shuffle buffer.
  """

  name: str = "digits"
  data_dir: str | None = None
  global_batch_size: int = 64
  seed: int = 0
  shuffle: bool = True
  validation_split: float = 0.0
  synthetic_examples: int = 60_000
  synthetic_eval_examples: int = 10_000
  synthetic_shape: tuple[int, ...] = (28, 28, 1)
  num_classes: int = 10
  cache: bool = False
  shuffle_buffer: int = 10_000
