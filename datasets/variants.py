"""Datasets for the notes' other model shapes: two inputs, and sequences.

* `digits_halves`: the notes' two-input binary example on real data. Input
  `input_1` is the top half of a digits image (32 pixels), `input_2` the
  bottom half; the label is 1 for the digits 5-9 and 0 for 0-4. Same fixed
  split as `digits`.
* `digits_two_targets`: digits images with two labels for a two-output
  model: `digit` (10 classes) and `large` (1 for the digits 5-9).
* `sequences`: 16 time steps of one feature each, uniform in [0, 1); the
  label (4 classes) is the quarter of the sequence with the largest sum, so
  a model has to integrate over time. Generated from the seed.
"""

import numpy as np

from datasets import sources

SEQUENCE_LENGTH = 16
SEQUENCE_CLASSES = 4


def digits_halves(digits: sources.ArraySource) -> sources.ArraySource:
  """Splits each digits image into two named inputs; binary labels."""

  def halves(images: np.ndarray) -> dict[str, np.ndarray]:
    flat = images.reshape(len(images), -1)
    middle = flat.shape[1] // 2
    return {"input_1": flat[:, :middle], "input_2": flat[:, middle:]}

  return sources.ArraySource(
      "digits_halves", halves(digits.train_features),
      (digits.train_labels >= 5).astype(np.int32),
      halves(digits.eval_features), (digits.eval_labels >= 5).astype(np.int32),
      num_classes=2, feature_scale=digits.feature_scale)


def make_sequences(*, num_examples: int = 8_000, num_eval_examples: int = 1_000,
                   seed: int = 0) -> sources.ArraySource:
  """Sequences [N, 16, 1] whose label is the quarter with the largest sum."""
  rng = np.random.default_rng(seed)
  total = num_examples + num_eval_examples
  values = rng.random((total, SEQUENCE_LENGTH, 1), dtype=np.float32)
  quarters = values.reshape(total, SEQUENCE_CLASSES, -1).sum(axis=2)
  labels = quarters.argmax(axis=1).astype(np.int32)
  return sources.ArraySource(
      "sequences", values[:num_examples], labels[:num_examples],
      values[num_examples:], labels[num_examples:],
      num_classes=SEQUENCE_CLASSES)


def digits_two_targets(digits: sources.ArraySource) -> sources.ArraySource:
  """Digits with the labels {"digit": 0-9, "large": digit >= 5}."""

  def targets(labels: np.ndarray) -> dict[str, np.ndarray]:
    return {"digit": labels, "large": (labels >= 5).astype(np.int32)}

  return sources.ArraySource(
      "digits_two_targets", digits.train_features,
      targets(digits.train_labels), digits.eval_features,
      targets(digits.eval_labels), num_classes={"digit": 10, "large": 2},
      feature_scale=digits.feature_scale)
