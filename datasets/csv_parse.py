"""Reading CSV files in chunks: a fast vectorised parser and an exact one.

`read_chunks` yields the rows of one file as bounded chunks of float64
features and stripped label cells, so memory does not grow with the file.
The fast engine is pandas' C parser. Anything it does not take as given
(a cell that is not a number, a ragged row, an empty label, a "nan" cell)
raises `NeedsExactParse`, and the caller reads that file again with the
exact engine: Python's `csv` module, cell by cell, which either accepts
the file as the reader always has (`float(cell)`) or raises the
one-sentence DataError naming the file, line and column. Good files pay
for the fast engine only; a bad file costs a slow pass to name its error.

Lines are numbered as `csv.reader` counts records, header = line 1.
"""

from collections.abc import Iterator
import csv

import numpy as np

from datasets.errors import DataError

# About 32 MB of float64 features per chunk, within these bounds of rows.
_CHUNK_VALUES = 1 << 22
_MIN_CHUNK_ROWS = 256
_MAX_CHUNK_ROWS = 1 << 16


class NeedsExactParse(Exception):
  """The fast engine met something only the exact engine can judge."""


def _open(path: str):
  # utf-8-sig: Excel writes a byte order mark before the header.
  return open(path, newline="", encoding="utf-8-sig")  # pylint: disable=consider-using-with


def _unreadable(path: str, error: Exception) -> DataError:
  return DataError(f"{path} cannot be read ({type(error).__name__}).")


def read_header(path: str) -> list[str]:
  """The stripped column names of the file's first non-empty row.

  Raises:
    DataError: If the file cannot be read or holds no row.
  """
  try:
    with _open(path) as stream:
      for row in csv.reader(stream):
        if row:
          return [name.strip() for name in row]
  except (OSError, UnicodeDecodeError, csv.Error) as error:
    raise _unreadable(path, error) from None
  raise DataError(f"{path} is empty; it needs a header row.")


def chunk_rows(num_columns: int) -> int:
  return min(_MAX_CHUNK_ROWS,
             max(_MIN_CHUNK_ROWS, _CHUNK_VALUES // max(1, num_columns)))


def read_chunks(path: str, names: list[str], label_index: int, *,
                exact: bool) -> Iterator[tuple[np.ndarray, np.ndarray]]:
  """Yields (features float64 [n, columns - 1], label cells [n]) chunks.

  Args:
    path: The CSV file (its header already read as `names`).
    names: The header's column names.
    label_index: Position of the label's column.
    exact: Use the exact engine (else the fast one).

  Raises:
    NeedsExactParse: Fast engine only: read the file again with exact=True.
    DataError: Exact engine: one sentence naming the file, line and column.
  """
  if exact:
    yield from _exact_chunks(path, names, label_index)
  else:
    yield from _fast_chunks(path, names, label_index)


def _fast_chunks(path, names, label_index):
  import pandas as pd  # pylint: disable=import-outside-toplevel
  width = len(names)
  dtypes = {column: np.float64 for column in range(width)}
  dtypes[label_index] = str
  features = [column for column in range(width) if column != label_index]
  try:
    reader = pd.read_csv(
        path, encoding="utf-8-sig", header=0, names=list(range(width)),
        dtype=dtypes, keep_default_na=False, na_values=[], index_col=False,
        skip_blank_lines=True, chunksize=chunk_rows(width), engine="c")
    with reader:
      for frame in reader:
        values = frame[features].to_numpy(np.float64)
        cells = frame[label_index].str.strip().to_numpy(object)
        if np.isnan(values).any() or (cells == "").any():
          raise NeedsExactParse()  # A short row, a "nan" or empty cell.
        yield values, cells
  except (ValueError, pd.errors.ParserError, UnicodeDecodeError):
    raise NeedsExactParse() from None
  except OSError as error:
    raise _unreadable(path, error) from None


def _exact_chunks(path, names, label_index):
  size = chunk_rows(len(names))
  try:
    with _open(path) as stream:
      rows = ((number, row) for number, row
              in enumerate(csv.reader(stream), start=1) if row)
      next(rows)  # The header.
      values, cells = [], []
      for number, row in rows:
        values.append(_numbers(path, names, label_index, number, row))
        cells.append(row[label_index].strip())
        if len(cells) == size:
          yield np.array(values, np.float64).reshape(size, -1), _cells(cells)
          values, cells = [], []
      if cells:
        yield (np.array(values, np.float64).reshape(len(cells), -1),
               _cells(cells))
  except (OSError, UnicodeDecodeError, csv.Error) as error:
    raise _unreadable(path, error) from None


def _cells(cells: list[str]) -> np.ndarray:
  array = np.empty(len(cells), object)
  array[:] = cells
  return array


def _numbers(path, names, label_index, number, row) -> list[float]:
  if len(row) != len(names):
    raise DataError(f"{path} line {number} has {len(row)} cells, but the"
                    f" header has {len(names)}.")
  values = []
  for column, cell in enumerate(row):
    if column == label_index:
      continue
    try:
      values.append(float(cell))
    except ValueError:
      raise DataError(f"{path} line {number} column {names[column]!r}"
                      f" holds {cell!r}, not a number; features must be"
                      " numbers (encode or drop that column).") from None
  return values


def line_of_row(path: str, row: int) -> int:
  """The line (record number, header = 1) of data row `row` (from 0)."""
  with _open(path) as stream:
    seen = -1
    for number, cells in enumerate(csv.reader(stream), start=1):
      if cells:
        if seen == row:
          return number
        seen += 1
  return -1
