"""The task of a label column: classes or regression targets, never guessed.

`task` is "auto", "classification" or "regression". With "auto" a column
of text labels is classes; numbers with a fraction are regression targets;
whole numbers are classes only when clearly so (see `is_clearly_classes`);
anything else is one sentence asking for the task. An explicit task always
wins, or is refused when the labels cannot mean it.
"""


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






def is_number(cell: str) -> bool:
  """Whether a CSV cell holds a number."""
  try:
    float(cell)
  except ValueError:
    return False
  return True
