"""CSV files converted once, in chunks, to a binary table (memory or cache).

`build_table` reads the files chunk by chunk (`datasets.csv_parse`) in
one pass and keeps, per row, the features in the narrowest dtype that
holds them exactly (uint8, int16, else float32, as `float(cell)` then
float32 gives), the label cell as a number (NaN if text) and as a code
into the column's distinct texts; the feature statistics come from the
same pass. Memory stays bounded by a chunk whatever the file's size (plus
12 bytes per row for the labels).

Where the rows go:
* in memory, when no cache directory is given and the files are small
  (`MEMORY_LIMIT_BYTES`);
* otherwise in a cache directory: `<cache_dir>/<files+label key>/<stamp>/`
  holding `features.bin` (raw rows), `labels.npz` and `table.json`. The
  stamp hashes each file's path, size and modification time, so an entry
  is reused while the files are unchanged and a changed file is read
  again (older stamps of the same files are removed, and so are the
  entries of files that no longer exist, whenever an entry is written). An entry is written
  aside and renamed into place: it is complete or absent, and two
  processes building it at once both end up reading one whole entry.
  The default directory, `default_cache_dir()`, is the user's cache
  folder, so a read-only data folder is no obstacle.

`datasets.csv_source.FeatureReader` reads rows from the file with
`os.preadv` (not a memory map: mapped pages would count in the process's
resident memory and grow with the file as an epoch touches them).
"""

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile

import numpy as np

from datasets import csv_parse
from datasets.csv_columns import DTYPES, Features, Labels, Statistics
from datasets.errors import DataError, argument

FORMAT_VERSION = 1
MEMORY_LIMIT_BYTES = 64 << 20
_FEATURES, _LABELS, _META = "features.bin", "labels.npz", "table.json"


def default_cache_dir() -> str:
  """$XDG_CACHE_HOME/harness/csv (~/.cache/...), else the temp folder."""
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(
      os.path.expanduser("~"), ".cache")
  return os.path.join(base, "harness", "csv")


@dataclasses.dataclass
class Table:
  """The rows of CSV files as arrays; features in memory or in a file.

  Attributes:
    names: The header's column names.
    rows_per_file: Data rows of each file, in file order.
    features: An array [N, D] in memory, or None (then in `path`).
    path: The cache's feature file, or None.
    dtype: The features' dtype.
    num_columns: D.
    label_values: float64 [N]: the label cells as numbers, NaN if text.
    label_codes: int32 [N] index into `label_texts`, or None if the column
      holds more distinct texts than `csv_columns.MAX_LABEL_TEXTS`.
    label_texts: The distinct label texts, or None.
    first_text: First row whose label is not a number, or -1.
    first_number: First row whose label is a number, or -1.
    first_empty: First row with an empty label, or -1.
    mean, m2: Features' mean and sum of squared deviations (float64).
  """

  names: list
  rows_per_file: list
  features: np.ndarray | None
  path: str | None
  dtype: np.dtype
  num_columns: int
  label_values: np.ndarray
  label_codes: np.ndarray | None
  label_texts: list | None
  first_text: int
  first_number: int
  first_empty: int
  mean: np.ndarray
  m2: np.ndarray

  @property
  def num_rows(self) -> int:
    return int(sum(self.rows_per_file))

  def without_label_cells(self) -> "Table":
    """The table without its label cells (once the labels are decided)."""
    return dataclasses.replace(self, label_values=None, label_codes=None)


def _read_files(paths, label_column: str, features: Features):
  """Reads every file into `features`; returns (names, rows, labels, stats)."""
  names, rows_per_file = None, []
  labels, statistics = Labels(), None
  for path in paths:
    header = csv_parse.read_header(path)
    if label_column not in header:
      raise DataError(f"{path} has no column {label_column!r} for"
                      f" {argument('label_column')}; its columns are"
                      f" {', '.join(header)}.")
    if names is not None and header != names:
      raise DataError(f"{path} has the columns {', '.join(header)}, unlike"
                      " the first file's; all files need the same header.")
    names = header
    statistics = statistics or Statistics(len(names) - 1)
    marks = (features.mark(), labels.mark(),
             (statistics.count, statistics.mean, statistics.m2))
    for exact in (False, True):
      try:
        rows = 0
        for values, cells in csv_parse.read_chunks(
            path, names, names.index(label_column), exact=exact):
          features.append(values)
          labels.append(cells)
          # Whole numbers in int16's range are float32 values already.
          statistics.add(values, is_exact=features.kind < len(DTYPES) - 1)
          rows += len(cells)
        break
      except csv_parse.NeedsExactParse:
        features.rewind(marks[0])
        labels.rewind(marks[1])
        statistics.count, statistics.mean, statistics.m2 = marks[2]
    rows_per_file.append(rows)
  return names, rows_per_file, labels, statistics


def _stamp(paths) -> list[dict]:
  stamps = []
  for path in paths:
    info = os.stat(path)
    stamps.append({"path": os.path.abspath(path), "size": info.st_size,
                   "mtime_ns": info.st_mtime_ns})
  return stamps


def _digest(value) -> str:
  text = json.dumps(value, sort_keys=True)
  return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def build_table(paths: list[str], label_column: str, *,
                cache_dir: str | None) -> Table:
  """The files' rows as a `Table`, from the cache when it is current.

  Args:
    paths: The CSV files, in order (same header).
    label_column: The label's column name.
    cache_dir: Where converted files are kept; None keeps small files in
      memory and puts larger ones under `default_cache_dir()`.

  Raises:
    DataError: One sentence naming the file, line and column of a bad
      cell, a missing column, a ragged row, or an unusable cache folder.
  """
  stamps = _stamp(paths)
  if cache_dir is None:
    if sum(stamp["size"] for stamp in stamps) <= MEMORY_LIMIT_BYTES:
      features = Features(None)
      return _table(*_read_files(paths, label_column, features), features,
                    path=None)
    cache_dir = default_cache_dir()
  group = os.path.join(os.path.abspath(cache_dir), _digest(
      [FORMAT_VERSION, label_column, [s["path"] for s in stamps]]))
  entry = os.path.join(group, _digest(stamps))
  if os.path.isfile(os.path.join(entry, _META)):
    try:
      return _load(entry)
    except (OSError, ValueError, KeyError):
      shutil.rmtree(entry, ignore_errors=True)  # Damaged: built again.
  return _write(paths, label_column, group, entry, stamps)


def _write(paths, label_column, group, entry, stamps) -> Table:
  try:
    os.makedirs(group, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".partial-", dir=group)
  except OSError as error:
    raise DataError(f"the CSV cache folder {group} cannot be written"
                    f" ({error.strerror or type(error).__name__}); give a"
                    " writable cache_dir.") from None
  try:
    features = Features(os.path.join(staging, _FEATURES))
    names, rows, labels, statistics = _read_files(paths, label_column,
                                                  features)
    table = _table(names, rows, labels, statistics, features, path=None)
    np.savez(os.path.join(staging, _LABELS), values=table.label_values,
             **({} if table.label_codes is None
                else {"codes": table.label_codes}))
    meta = {"version": FORMAT_VERSION, "files": stamps, "names": names,
            "rows_per_file": rows, "dtype": np.dtype(table.dtype).name,
            "num_columns": table.num_columns, "texts": table.label_texts,
            "first": {"text": table.first_text, "number": table.first_number,
                      "empty": table.first_empty},
            "mean": table.mean.tolist(), "m2": table.m2.tolist()}
    with open(os.path.join(staging, _META), "w", encoding="utf-8") as stream:
      json.dump(meta, stream)
    _remove_stale(group, keep=(os.path.basename(staging),
                               os.path.basename(entry)))
    _remove_orphans(os.path.dirname(group))
    try:
      os.rename(staging, entry)
    except OSError:  # Another process put a whole entry there first.
      shutil.rmtree(staging, ignore_errors=True)
    return _load(entry)
  except OSError as error:
    shutil.rmtree(staging, ignore_errors=True)
    raise DataError(f"the CSV cache folder {group} cannot be written"
                    f" ({error.strerror or type(error).__name__}); give a"
                    " writable cache_dir.") from None
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise


def _remove_stale(group: str, keep) -> None:
  """Removes entries of other versions of the same files.

  The current entry is kept: another process may be reading it (it built
  it first; this process's rename then fails and it reads that one too).
  """
  for name in os.listdir(group):
    if name not in keep and not name.startswith(".partial-"):
      shutil.rmtree(os.path.join(group, name), ignore_errors=True)


def _remove_orphans(root: str) -> None:
  """Removes the entries of CSV files that no longer exist."""
  for group in os.listdir(root):
    folder = os.path.join(root, group)
    for name in os.listdir(folder) if os.path.isdir(folder) else ():
      try:
        with open(os.path.join(folder, name, _META), encoding="utf-8") as f:
          files = [stamp["path"] for stamp in json.load(f)["files"]]
      except (OSError, ValueError, KeyError, TypeError):
        continue  # Being written, or not ours.
      if not all(os.path.exists(path) for path in files):
        shutil.rmtree(folder, ignore_errors=True)
        break


def _table(names, rows, labels: Labels, statistics, features, *, path):
  codes = (np.concatenate(labels.codes) if labels.texts is not None
           and labels.codes else
           (np.zeros(0, np.int32) if labels.texts is not None else None))
  num_columns = len(names) - 1
  return Table(
      names=names, rows_per_file=rows,
      features=features.finish(num_columns), path=path,
      dtype=np.dtype(DTYPES[features.kind]), num_columns=num_columns,
      label_values=(np.concatenate(labels.values) if labels.values
                    else np.zeros(0)),
      label_codes=codes,
      label_texts=(None if labels.texts is None else list(labels.texts)),
      first_text=labels.first["text"], first_number=labels.first["number"],
      first_empty=labels.first["empty"], mean=statistics.mean,
      m2=statistics.m2)


def _load(entry: str) -> Table:
  with open(os.path.join(entry, _META), encoding="utf-8") as stream:
    meta = json.load(stream)
  if meta["version"] != FORMAT_VERSION:
    raise ValueError("old format")
  with np.load(os.path.join(entry, _LABELS)) as archive:
    values = archive["values"]
    codes = archive["codes"] if "codes" in archive.files else None
  path = os.path.join(entry, _FEATURES)
  dtype = np.dtype(meta["dtype"])
  expected = len(values) * meta["num_columns"] * dtype.itemsize
  if os.path.getsize(path) != expected:
    raise ValueError("truncated")
  return Table(
      names=meta["names"], rows_per_file=meta["rows_per_file"],
      features=None, path=path, dtype=dtype,
      num_columns=meta["num_columns"], label_values=values,
      label_codes=codes, label_texts=meta["texts"],
      first_text=meta["first"]["text"],
      first_number=meta["first"]["number"],
      first_empty=meta["first"]["empty"],
      mean=np.array(meta["mean"]), m2=np.array(meta["m2"]))
