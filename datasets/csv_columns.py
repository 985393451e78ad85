"""What one pass over a CSV's chunks accumulates (`datasets.csv_cache`).

`Features` keeps the rows in the narrowest dtype that holds them exactly
(uint8, int16, else float32), in memory or appended to a file; `Labels`
keeps the label cells as numbers and as codes into their distinct texts;
`Statistics` merges per-column means and variances chunk by chunk.
"""

import os

import numpy as np

# Distinct label texts kept; a column with more is numbers or not classes.
MAX_LABEL_TEXTS = 1 << 16
DTYPES = (np.uint8, np.int16, np.float32)  # Each holds the former's values.
_NAN_TEXTS = ("nan", "+nan", "-nan")


def _narrowest(values: np.ndarray, at_least: int) -> int:
  """Index into DTYPES of the narrowest dtype holding `values` exactly."""
  if at_least == len(DTYPES) - 1 or not values.size:
    return at_least
  if not np.array_equal(values, np.round(values)):
    return len(DTYPES) - 1
  low, high = values.min(), values.max()
  for index in range(at_least, len(DTYPES) - 1):
    info = np.iinfo(DTYPES[index])
    if info.min <= low and high <= info.max:
      return index
  return len(DTYPES) - 1


class Features:
  """Feature chunks, appended in the narrowest dtype so far (widened)."""

  def __init__(self, path: str | None):
    self.path, self.kind, self.chunks = path, 0, []
    self.stream = open(path, "wb") if path else None  # pylint: disable=consider-using-with

  def mark(self):
    return self.stream.tell() if self.stream else len(self.chunks)

  def rewind(self, mark) -> None:
    if self.stream:
      self.stream.seek(mark)
      self.stream.truncate()
    else:
      del self.chunks[mark:]

  def append(self, values: np.ndarray) -> None:
    kind = _narrowest(values, self.kind)
    if kind != self.kind:
      self._widen(kind)
    chunk = values.astype(DTYPES[self.kind])
    if self.stream:
      self.stream.write(chunk.tobytes())
    else:
      self.chunks.append(chunk)

  def _widen(self, kind: int) -> None:
    old, new = DTYPES[self.kind], DTYPES[kind]
    self.kind = kind
    if not self.stream:
      self.chunks = [chunk.astype(new) for chunk in self.chunks]
      return
    self.stream.close()
    wider = self.path + ".wider"
    with open(self.path, "rb") as source, open(wider, "wb") as target:
      while block := source.read(1 << 24):
        target.write(np.frombuffer(block, old).astype(new).tobytes())
    os.replace(wider, self.path)
    self.stream = open(self.path, "ab")  # pylint: disable=consider-using-with

  def finish(self, num_columns: int):
    if self.stream:
      self.stream.close()
      return None
    if not self.chunks:
      return np.empty((0, num_columns), DTYPES[self.kind])
    return np.concatenate(self.chunks)


class Labels:
  """Label cells as numbers, codes into distinct texts, first rows of kinds."""

  def __init__(self):
    self.values, self.codes, self.texts = [], [], {}
    self.rows = 0
    self.first = {"text": -1, "number": -1, "empty": -1}

  def mark(self):
    return (len(self.values), len(self.codes), dict(self.texts), self.rows,
            dict(self.first))

  def rewind(self, mark) -> None:
    values, codes, self.texts, self.rows, self.first = mark
    del self.values[values:], self.codes[codes:]

  def _note(self, kind: str, mask: np.ndarray) -> None:
    if self.first[kind] < 0 and mask.any():
      self.first[kind] = self.rows + int(np.argmax(mask))

  def append(self, cells: np.ndarray) -> None:
    import pandas as pd  # pylint: disable=import-outside-toplevel
    series = pd.Series(cells, dtype=object)
    values = pd.to_numeric(series, errors="coerce").to_numpy(np.float64)
    is_nan_text = series.str.lower().isin(_NAN_TEXTS).to_numpy()
    is_text = np.isnan(values) & ~is_nan_text
    self._note("empty", (series == "").to_numpy())
    self._note("text", is_text)
    self._note("number", ~is_text)
    self.values.append(values)
    if self.texts is not None:
      codes, uniques = pd.factorize(series)
      lookup = np.array([self.texts.setdefault(text, len(self.texts))
                         for text in uniques], np.int32)
      self.codes.append(lookup[codes])
      if len(self.texts) > MAX_LABEL_TEXTS:
        self.texts, self.codes = None, []
    self.rows += len(cells)


class Statistics:
  """Per-column mean and squared deviations, merged chunk by chunk (Chan)."""

  def __init__(self, num_columns: int):
    self.count = 0
    self.mean = np.zeros(num_columns)
    self.m2 = np.zeros(num_columns)

  def add(self, values: np.ndarray, *, is_exact: bool = False) -> None:
    """Adds rows; `is_exact`: they are float32 values already (as trained)."""
    if not is_exact:
      values = values.astype(np.float32)
    count = len(values)
    if not count:
      return
    mean = values.mean(axis=0, dtype=np.float64)
    deviations = values - mean
    m2 = np.einsum("ij,ij->j", deviations, deviations)
    total = self.count + count
    delta = mean - self.mean
    self.mean = self.mean + delta * count / total
    self.m2 = self.m2 + m2 + delta ** 2 * self.count * count / total
    self.count = total
