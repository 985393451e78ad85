"""The task of a label column: classes or regression targets, never guessed.

`task` is "auto", "classification" or "regression". With "auto" a column
of text labels is classes; numbers with a fraction are regression targets;
whole numbers are classes only when clearly so (see `is_clearly_classes`);
anything else is one sentence asking for the task. An explicit task always
wins, or is refused when the labels cannot mean it.
"""

import numpy as np

from datasets.errors import DataError, argument

TASKS = ("auto", "classification", "regression")

# Whole-number labels are taken for classes only when there are two
# (binary, sklearn's "binary"), or at most this many distinct values, each
# seen twice on average (sklearn's
# `type_of_target` calls any whole numbers "multiclass"; a target such as
# diabetes progression, 214 distinct values in 442 rows, is not).
MAX_AUTO_CLASSES = 20


def check_task(task: str) -> str:
  """`task`, or DataError if it is not one of `TASKS`."""
  if task not in TASKS:
    raise DataError(f"{argument('task')}={task!r} must be one of"
                    f" {', '.join(TASKS)}.")
  return task


def is_clearly_classes(distinct: int, rows: int) -> bool:
  """Whether `distinct` whole-number values in `rows` rows are classes."""
  return distinct <= 2 or (distinct <= MAX_AUTO_CLASSES
                           and 2 * distinct <= rows)


def format_names(names, limit: int = 6) -> str:
  """"a, b, c" or "a, b, ..., z (40 in all)" for long lists."""
  names = [str(name) for name in names]
  if len(names) <= limit:
    return ", ".join(names)
  return (f"{', '.join(names[:limit - 1])}, ..., {names[-1]}"
          f" ({len(names)} in all)")


def _as_numbers(cells: list[str]):
  """(float64 array, index of the first cell that is not a number or -1)."""
  values = np.empty(len(cells), np.float64)
  for index, cell in enumerate(cells):
    try:
      values[index] = float(cell)
    except ValueError:
      return values, index
  return values, -1


def column_labels(cells: list[str], *, task: str, column: str, where,
                  class_names=None):
  """Labels of a column of text cells, and what they mean.

  Args:
    cells: The label cells, whitespace stripped, one per row.
    task: One of `TASKS`.
    column: The column's name (for messages).
    where: A function from a row index to "file line N" (for messages).
    class_names: The training data's class names, for eval data: text
      labels are mapped onto them (same indices as in training).

  Returns:
    (labels, task, class_names): int64 class indices or float32 targets;
    "classification" or "regression"; sorted text class names or None.

  Raises:
    DataError: One sentence: an empty label, labels that do not fit the
      given task, or a task in doubt.
  """
  check_task(task)
  for index, cell in enumerate(cells):
    if not cell:
      raise DataError(f"{where(index)} has no label in column {column!r}.")
  values, first_text = _as_numbers(cells)
  if class_names is not None or (first_text >= 0 and task != "regression"):
    return _text_classes(cells, task, column, class_names, where)
  if first_text >= 0:
    raise DataError(f"{where(first_text)} column {column!r} holds"
                    f" {cells[first_text]!r}, not a number;"
                    f" {argument('task')}=regression"
                    " needs numeric targets.")
  if not np.all(np.isfinite(values)):
    raise DataError(f"column {column!r} holds an infinite or NaN label"
                    f" ({where(int(np.argmin(np.isfinite(values))))}).")
  if task == "regression":
    return values.astype(np.float32), "regression", None
  whole = bool(np.all(values == np.round(values)))
  if not whole:
    if task == "classification":
      raise DataError(f"column {column!r} holds labels with fractions such as"
                      f" {cells[int(np.argmax(values != np.round(values)))]},"
                      " which cannot be classes; give"
                      f" {argument('task')}=regression.")
    return values.astype(np.float32), "regression", None
  distinct = np.unique(values)
  if distinct[0] < 0:
    if task == "classification":
      raise DataError(f"column {column!r} holds the class {distinct[0]:g};"
                      " classes are indices from 0, so renumber them from 0"
                      f" (or give {argument('task')}=regression).")
    raise DataError(f"column {column!r} holds negative whole numbers"
                    f" ({distinct[0]:g} to {distinct[-1]:g}): give"
                    f" {argument('task')}=regression if they are quantities, or"
                    " renumber classes from 0.")
  if task == "auto" and not is_clearly_classes(len(distinct), len(values)):
    raise DataError(f"column {column!r} holds {len(distinct)} distinct whole"
                    f" numbers in {len(values)} rows, so it may be classes or"
                    f" quantities: give {argument('task')}=regression or"
                    f" {argument('task')}=classification.")
  if len(distinct) < 2:
    raise DataError(f"column {column!r} holds one class only"
                    f" ({distinct[0]:g}); a classifier needs two or more, so"
                    " check the label column (or give"
                    f" {argument('task')}=regression).")
  return values.astype(np.int64), "classification", None


def is_number(cell: str) -> bool:
  """Whether a CSV cell holds a number."""
  try:
    float(cell)
  except ValueError:
    return False
  return True


def _text_classes(cells, task, column, class_names, where):
  """Text labels as indices of sorted class names (Keras's order)."""
  if task == "auto" and class_names is None:
    numbers = [is_number(cell) for cell in cells]
    if any(numbers):
      text = numbers.index(False)
      raise DataError(f"{where(text)} column {column!r} holds {cells[text]!r}"
                      f" where other rows hold numbers"
                      f" ({cells[numbers.index(True)]!r}); fix those rows, or"
                      f" give {argument('task')}=classification if every label"
                      " is a class name.")
  if class_names is None:
    class_names = sorted(set(cells))
    if len(class_names) < 2:
      raise DataError(f"column {column!r} holds one class only"
                      f" ({class_names[0]!r}); a classifier needs two or"
                      " more, so check the label column.")
    if task == "auto" and not is_clearly_classes(len(class_names),
                                                 len(cells)):
      raise DataError(f"column {column!r} holds {len(class_names)} distinct"
                      f" labels in {len(cells)} rows, more than classes"
                      " usually are: check the label column, or give"
                      f" {argument('task')}=classification.")
  index = {name: i for i, name in enumerate(class_names)}
  for row, cell in enumerate(cells):
    if cell not in index:
      raise DataError(f"{where(row)} column {column!r} holds {cell!r}, which"
                      " is not a class of the training data"
                      f" ({format_names(class_names)}).")
  return (np.array([index[cell] for cell in cells], np.int64),
          "classification", list(class_names))
