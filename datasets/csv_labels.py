"""The labels of a CSV table: classes, text classes or regression targets.

The rule is `datasets.labels`'s (`is_clearly_classes`), computed from the
table's label numbers and text codes (`datasets.csv_cache.Table`) instead
of a Python list of cells, so millions of rows cost arrays, not strings.
"""

import numpy as np

from datasets import csv_cache
from datasets import csv_columns
from datasets import labels as labels_lib
from datasets.errors import DataError, argument


def _cell(table, row: int) -> str:
  if table.label_texts is not None:
    return table.label_texts[int(table.label_codes[row])]
  return f"{table.label_values[row]:g}"


def table_labels(table, *, task: str, column: str, where, class_names=None):
  """(labels, task, class_names) of the table's label column.

  Args:
    table: A `csv_cache.Table`.
    task: One of `labels.TASKS`.
    column: The column's name (for messages).
    where: A function from a row to "file line N" (for messages).
    class_names: The training data's class names (eval data), or None.

  Returns:
    int64 class indices or float32 targets, the task, and the sorted text
    class names or None.

  Raises:
    DataError: One sentence: an empty label, labels that do not fit the
      given task, or a task in doubt.
  """
  labels_lib.check_task(task)
  if table.first_empty >= 0:
    raise DataError(f"{where(table.first_empty)} has no label in column"
                    f" {column!r}.")
  if class_names is not None or (table.first_text >= 0
                                 and task != "regression"):
    return _text_classes(table, task, column, class_names, where)
  if table.first_text >= 0:
    raise DataError(f"{where(table.first_text)} column {column!r} holds"
                    f" {_cell(table, table.first_text)!r}, not a number;"
                    f" {argument('task')}=regression needs numeric targets.")
  values = table.label_values
  finite = np.isfinite(values)
  if not finite.all():
    raise DataError(f"column {column!r} holds an infinite or NaN label"
                    f" ({where(int(np.argmin(finite)))}).")
  if task == "regression":
    return values.astype(np.float32), "regression", None
  fractions = values != np.round(values)
  if fractions.any():
    if task == "classification":
      raise DataError(f"column {column!r} holds labels with fractions such as"
                      f" {_cell(table, int(np.argmax(fractions)))}, which"
                      f" cannot be classes; give {argument('task')}=regression.")
    return values.astype(np.float32), "regression", None
  distinct = np.unique(values)
  if distinct[0] < 0:
    if task == "classification":
      raise DataError(f"column {column!r} holds the class {distinct[0]:g};"
                      " classes are indices from 0, so renumber them from 0"
                      f" (or give {argument('task')}=regression).")
    raise DataError(f"column {column!r} holds negative whole numbers"
                    f" ({distinct[0]:g} to {distinct[-1]:g}): give"
                    f" {argument('task')}=regression if they are quantities, or renumber"
                    " classes from 0.")
  if task == "auto" and not labels_lib.is_clearly_classes(len(distinct),
                                                          len(values)):
    raise DataError(f"column {column!r} holds {len(distinct)} distinct whole"
                    f" numbers in {len(values)} rows, so it may be classes or"
                    f" quantities: give {argument('task')}=regression or"
                    f" {argument('task')}=classification.")
  if len(distinct) < 2:
    raise DataError(f"column {column!r} holds one class only"
                    f" ({distinct[0]:g}); a classifier needs two or more, so"
                    f" check the label column (or give {argument('task')}=regression).")
  return values.astype(np.int64), "classification", None


def _text_classes(table, task, column, class_names, where):
  """Text labels as indices of sorted class names (Keras's order)."""
  if table.label_texts is None:
    raise DataError(f"column {column!r} holds more than"
                    f" {csv_columns.MAX_LABEL_TEXTS:,} distinct labels,"
                    " too many for classes: check the label column, or give"
                    f" {argument('task')}=regression.")
  texts = table.label_texts
  if task == "auto" and class_names is None and table.first_number >= 0:
    raise DataError(f"{where(table.first_text)} column {column!r} holds"
                    f" {_cell(table, table.first_text)!r} where other rows"
                    f" hold numbers ({_cell(table, table.first_number)!r});"
                    f" fix those rows, or give {argument('task')}=classification if every"
                    " label is a class name.")
  if class_names is None:
    class_names = sorted(texts)
    if len(class_names) < 2:
      raise DataError(f"column {column!r} holds one class only"
                      f" ({class_names[0]!r}); a classifier needs two or"
                      " more, so check the label column.")
    if task == "auto" and not labels_lib.is_clearly_classes(
        len(class_names), len(table.label_values)):
      raise DataError(f"column {column!r} holds {len(class_names)} distinct"
                      f" labels in {len(table.label_values)} rows, more than"
                      " classes usually are: check the label column, or give"
                      f" {argument('task')}=classification.")
  index = {name: i for i, name in enumerate(class_names)}
  lookup = np.array([index.get(text, -1) for text in texts], np.int64)
  labels = lookup[table.label_codes]
  unknown = labels < 0
  if unknown.any():
    row = int(np.argmax(unknown))
    raise DataError(f"{where(row)} column {column!r} holds"
                    f" {_cell(table, row)!r}, which is not a class of the"
                    " training data"
                    f" ({labels_lib.format_names(class_names)}).")
  return labels, "classification", list(class_names)
