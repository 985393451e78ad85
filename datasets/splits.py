"""Which rows a validation split holds out: pure functions of labels and seed.

Two rules, both deterministic (every worker of a multi-worker run, and
every resume, computes the same rows):

* `last`: the last fraction of the rows, before shuffling, as
  `keras.Model.fit(validation_split=)` (in-memory arrays keep it).
* `seeded`: file sources (CSV, image directories). Class labels are split
  per class, as scikit-learn's `train_test_split(stratify=)`: every class
  keeps its share on both sides (largest remainders, ties broken by the
  seed) and its held-out rows are drawn with the seed. Other labels
  (regression targets, multi-label or named outputs) are a seeded
  shuffle.

Either way each part keeps the rows in their original order, and the
`Split` says how many examples and classes each part holds and which
classes a part lacks (the warnings a run logs).
"""

import dataclasses

import numpy as np

from datasets.errors import DataError

# First word of the split's random key, so it differs from other uses of seed.
_SPLIT_SALT = 0x5B11
_NAMES_SHOWN = 5


@dataclasses.dataclass(frozen=True)
class Split:
  """The rows of the two parts and what the log says about them.

  Attributes:
    train_rows: Sorted int64 rows kept for training.
    held_out_rows: Sorted int64 rows held out for evaluation.
    summary: How the split was made, e.g. "validation_split=0.2 stratified
      by class, seed 0".
    train_classes: Classes present in the training part, or None if the
      labels are not classes.
    held_out_classes: Likewise for the held-out part.
    num_classes: Classes in the data, or None.
    warnings: One sentence per part that lacks a class.
  """

  train_rows: np.ndarray
  held_out_rows: np.ndarray
  summary: str
  train_classes: int | None
  held_out_classes: int | None
  num_classes: int | None
  warnings: tuple[str, ...]


def held_out_count(name: str, num_examples: int, fraction: float) -> int:
  """Examples the split holds out, or DataError if a part is empty."""
  held_out = int(round(num_examples * fraction))
  if not 0 < fraction < 1 or not 0 < held_out < num_examples:
    raise DataError(
        f"a validation split of {fraction} leaves an empty train or eval"
        f" part of {name}'s {num_examples} examples.")
  return held_out


def class_ids(labels) -> np.ndarray | None:
  """Class index per row: integer labels, or one-hot rows; else None.

  Float [N] labels are regression targets and float [N, C] rows that are
  not one-hot are multi-label (or soft) targets: neither is a class.
  """
  if isinstance(labels, dict):
    return None
  labels = np.asarray(labels)
  if labels.ndim == 2 and labels.shape[1] == 1:
    labels = labels[:, 0]
  if np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool:
    return labels.astype(np.int64) if labels.ndim == 1 else None
  if (labels.ndim == 2 and labels.shape[1] > 1
      and np.all((labels == 0) | (labels == 1))
      and np.all(labels.sum(axis=1) == 1)):
    return labels.argmax(axis=1)
  return None


def _rng(seed: int) -> np.random.Generator:
  return np.random.default_rng([_SPLIT_SALT, int(seed) % 2**64])


def _stratified(classes: np.ndarray, held_out: int,
                rng: np.random.Generator) -> np.ndarray:
  """Held-out rows: each class's share by largest remainders, drawn by rng."""
  values, inverse, counts = np.unique(classes, return_inverse=True,
                                      return_counts=True)
  ideal = counts * held_out / len(classes)
  take = np.floor(ideal).astype(np.int64)
  # Seats left go to the largest remainders (ties in a seeded order); a
  # class gives its last example to evaluation only when nothing else can.
  tie_break = rng.permutation(len(values))
  order = np.lexsort((tie_break, -(ideal - take)))
  left = held_out - int(take.sum())
  for may_empty_train in (False, True):
    for index in order:
      if not left:
        break
      if take[index] + 1 < counts[index] or (
          may_empty_train and take[index] < counts[index]):
        take[index] += 1
        left -= 1
  members = np.split(np.argsort(inverse, kind="stable"),
                     np.cumsum(counts)[:-1])
  return np.concatenate([rng.permutation(rows)[:count]
                         for rows, count in zip(members, take)])


def _class_warnings(classes, train_rows, held_out_rows, class_names,
                    fraction, output: str = ""):
  """(warnings, classes in training, in held-out, in all) of one output."""
  present, counts = np.unique(classes, return_counts=True)
  counts = dict(zip(present.tolist(), counts.tolist()))
  train, held = (set(np.unique(classes[rows]).tolist())
                 for rows in (train_rows, held_out_rows))
  warnings = []
  for part, has, fix in (
      ("held-out", held, "its metrics do not cover them"),
      ("training", train, "the model never learns them")):
    missing = [c for c in counts if c not in has]
    if not missing:
      continue
    named = ", ".join(
        f"{_class_name(c, class_names)}"
        f" ({counts[c]} example{'s' if counts[c] > 1 else ''})"
        for c in missing[:_NAMES_SHOWN])
    more = (f" and {len(missing) - _NAMES_SHOWN} more"
            if len(missing) > _NAMES_SHOWN else "")
    of_output = f" of output {output!r}" if output else ""
    warnings.append(
        f"validation_split={fraction} leaves {len(missing)} of"
        f" {len(counts)} classes{of_output} out of the {part} part"
        f" ({named}{more}), so {fix}; give these classes more examples,"
        " or give eval data of your own.")
  return tuple(warnings), len(train), len(held), len(counts)


def _class_name(index: int, class_names) -> str:
  if class_names is not None and 0 <= index < len(class_names):
    return repr(class_names[index])
  return f"class {index}"


def split_rows(labels, num_examples: int, fraction: float, *, rule: str,
               seed: int = 0, name: str = "the data",
               class_names=None) -> Split:
  """The rows of each part of a validation split.

  Args:
    labels: The labels: an array [N] or [N, C], or a dict of them.
    num_examples: N.
    fraction: The held-out fraction, in (0, 1).
    rule: "last" (Keras fit's rule) or "seeded" (stratified for classes).
    seed: The run's seed (rule "seeded").
    name: The data's name, for errors.
    class_names: Names of the classes by index, for warnings.

  Returns:
    A `Split`.

  Raises:
    DataError: If a part would be empty.
  """
  held_out = held_out_count(name, num_examples, fraction)
  classes = class_ids(labels)
  if rule == "last":
    held_out_rows = np.arange(num_examples - held_out, num_examples)
    summary = (f"validation_split={fraction}: the last {held_out:,} rows,"
               " before shuffling, as Keras's fit")
  elif classes is not None:
    held_out_rows = _stratified(classes, held_out, _rng(seed))
    summary = f"validation_split={fraction} stratified by class, seed {seed}"
  else:
    held_out_rows = _rng(seed).permutation(num_examples)[:held_out]
    summary = f"validation_split={fraction} shuffled with seed {seed}"
  held_out_rows = np.sort(held_out_rows).astype(np.int64)
  is_held_out = np.zeros(num_examples, bool)
  is_held_out[held_out_rows] = True
  train_rows = np.flatnonzero(~is_held_out).astype(np.int64)
  if classes is not None:
    warnings, *counts = _class_warnings(classes, train_rows, held_out_rows,
                                        class_names, fraction)
    return Split(train_rows, held_out_rows, summary, *counts, warnings)
  warnings = ()
  if isinstance(labels, dict):  # Named outputs: each output's classes.
    for output, array in labels.items():
      output_classes = class_ids(array)
      if output_classes is not None:
        warnings += _class_warnings(output_classes, train_rows,
                                    held_out_rows, None, fraction, output)[0]
  return Split(train_rows, held_out_rows, summary, None, None, None, warnings)
