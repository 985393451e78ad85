"""Feature files for prediction: `.npy`, `.npz`, `.csv` and images.

* `.npy`: one array [N, ...] (a single-input model).
* `.npz`: one array per named input (keys = input names), or a single array
  (any key) for a single-input model.
* `.csv`: one example per row, numbers only (read in chunks: memory is the
  float32 array's); each row is reshaped to the model's input shape
  (single-input models). A first row that is not all
  numbers is a header: with the training CSV's `feature_names` its columns
  are matched by name (others, e.g. the label column, are ignored).
* Images (`load_images`): an image file or a folder of them (searched
  recursively, sorted), decoded and resized as in training.
"""

import csv
import os
import zipfile

import numpy as np

from datasets import csv_parse
from datasets import labels
from datasets.errors import DataError

FEATURE_SUFFIXES = (".npy", ".npz", ".csv")


def load_features(path: str, input_shape, feature_names=None):
  """Reads `path` and checks it against the model's input shape.

  Args:
    path: A `.npy`, `.npz` or `.csv` file.
    input_shape: Shape of one example: a tuple, or a dict name -> tuple for
      a model with named inputs.
    feature_names: The training CSV's feature columns, in order, if known:
      a CSV with a header row gives these columns.

  Returns:
    An array [N, *input_shape], or a dict of such arrays.

  Raises:
    DataError: If the file is missing, unreadable or does not fit.
  """
  suffix = os.path.splitext(path)[1].lower()
  if suffix not in FEATURE_SUFFIXES:
    raise DataError(f"{path}: the input must end in"
                    f" {', '.join(FEATURE_SUFFIXES)}.")
  if not os.path.isfile(path):
    raise DataError(f"{path} does not exist.")
  try:
    if suffix == ".npy":
      features = np.load(path, allow_pickle=False)
    elif suffix == ".npz":
      with np.load(path, allow_pickle=False) as archive:
        features = {key: archive[key] for key in archive.files}
    else:
      features = _read_csv(path, feature_names)
  except DataError:
    raise
  except (OSError, ValueError, EOFError, zipfile.BadZipFile,
          csv.Error) as error:
    raise DataError(f"{path} is not a readable {suffix} file"
                    f" ({type(error).__name__}: {error}).") from None
  return _fit(path, features, input_shape)


def _read_csv(path: str, feature_names):
  """Rows of numbers; a header row picks `feature_names` by name.

  Read in chunks straight into float32 (pandas' parser; Python's `csv`
  for a file it does not take as given, to name the bad line): memory is
  the array's, not ~5x the file's as a list of rows of strings.
  """
  first = _first_row(path)
  if first is None:
    raise DataError(f"{path} holds no rows.")
  header = [cell.strip() for cell in first]
  if all(labels.is_number(cell) for cell in header):
    header = None
  columns = list(range(len(first)))
  if header is not None and feature_names:
    missing = [name for name in feature_names if name not in header]
    if missing:
      raise DataError(f"{path} has no column {missing[0]!r}, a feature the"
                      f" model was trained on ({', '.join(feature_names)});"
                      " add it to the file.")
    columns = [header.index(name) for name in feature_names]
  try:
    values = _fast_csv(path, len(first), columns, header is not None)
  except _NeedsExact:
    values = None  # Out of the handler first: it holds the parsed chunks.
  if values is None:
    values = _exact_csv(path, len(first), columns, header is not None)
  if values.shape[0] == 0:
    raise DataError(f"{path} holds a header row but no examples.")
  return values


class _NeedsExact(Exception):
  """pandas met something only the exact reader can judge or name."""


def _is_blank(row: list[str]) -> bool:
  """A line pandas skips as blank: empty, or nothing but spaces."""
  return not row or (len(row) == 1 and not row[0].strip())


def _first_row(path: str):
  with open(path, newline="", encoding="utf-8-sig") as stream:
    return next((row for row in csv.reader(stream) if not _is_blank(row)),
                None)


def _fast_csv(path, width, columns, has_header):
  import pandas as pd  # pylint: disable=import-outside-toplevel
  used = set(columns)
  others = [column for column in range(width) if column not in used]
  chunks = []
  try:
    # No `names`/`usecols`: with them pandas drops a long row's extra cells
    # without a word; without, a ragged row is an error (named exactly
    # by the exact reader).
    with pd.read_csv(path, encoding="utf-8-sig", header=None,
                     skiprows=_lines_through_header(path) if has_header
                     else 0,
                     dtype={column: np.float64 if column in used else object
                            for column in range(width)},
                     index_col=False, keep_default_na=False, na_values=[],
                     skip_blank_lines=True, engine="c",
                     chunksize=csv_parse.chunk_rows(width)) as reader:
      for frame in reader:
        if frame.shape[1] != width:
          raise _NeedsExact()
        values = frame[columns].to_numpy(np.float64)
        # A short row (NaN or "" where cells are missing), or a "nan" cell.
        if np.isnan(values).any() or (frame[others] == "").any(axis=None):
          raise _NeedsExact()
        chunks.append(values.astype(np.float32))
  except (ValueError, pd.errors.ParserError, UnicodeDecodeError):
    raise _NeedsExact() from None
  if not chunks:
    return np.empty((0, len(columns)), np.float32)
  return np.concatenate(chunks) if len(chunks) > 1 else chunks[0]


def _lines_through_header(path: str) -> int:
  """Physical lines up to the header (blank lines before it included)."""
  with open(path, encoding="utf-8-sig") as stream:
    for count, line in enumerate(stream, start=1):
      if line.strip():
        return count
  return 0


def _exact_csv(path, width, columns, has_header):
  """As `float(cell)` takes each cell; names the first line that fails."""
  size = csv_parse.chunk_rows(width)
  chunks, chunk, used = [], np.empty((size, len(columns)), np.float32), 0
  with open(path, newline="", encoding="utf-8-sig") as stream:
    rows = ((line, row) for line, row
            in enumerate(csv.reader(stream), start=1) if not _is_blank(row))
    if has_header:
      next(rows)
    for line, row in rows:
      if len(row) != width:
        raise DataError(f"{path} line {line} has {len(row)} cells, but the"
                        f" {'header' if has_header else 'first row'} has"
                        f" {width}.")
      try:
        chunk[used] = [float(row[column]) for column in columns]
      except (ValueError, IndexError):
        raise DataError(f"{path} line {line} does not hold"
                        f" {len(columns)} numbers.") from None
      used += 1
      if used == size:
        chunks.append(chunk)
        chunk, used = np.empty_like(chunk), 0
  chunks.append(chunk[:used])
  return np.concatenate(chunks)


def list_images(path: str) -> list[str]:
  """An image file, or the image files under a folder (sorted)."""
  from datasets.images import IMAGE_EXTENSIONS  # pylint: disable=import-outside-toplevel
  if os.path.isfile(path):
    return [path]
  if not os.path.isdir(path):
    raise DataError(f"{path} does not exist.")
  found = []
  for root, dirs, names in os.walk(path):
    dirs.sort()
    found += [os.path.join(root, name) for name in sorted(names)
              if name.lower().endswith(IMAGE_EXTENSIONS)]
  if not found:
    raise DataError(f"{path} holds no images ending in"
                    f" {', '.join(IMAGE_EXTENSIONS)}.")
  return found


def load_images(paths, *, image_size, channels: int) -> np.ndarray:
  """Images decoded and resized as `from_image_directory` does, unscaled.

  Returns:
    float32 pixels 0..255 [N, height, width, channels] (the export's
    `feature_scale` scales them as in training).

  Raises:
    DataError: Naming a file that cannot be read or decoded.
  """
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  images = []
  for path in paths:
    try:
      image = tf.io.decode_image(tf.io.read_file(path), channels=channels,
                                 expand_animations=False)
    except (tf.errors.OpError, OSError) as error:
      reason = str(getattr(error, "message", error)).splitlines()[0]
      raise DataError(f"{path} is not a readable image ({reason}).") from None
    images.append(tf.image.resize(image, image_size,
                                  method="bilinear").numpy())
  return np.stack(images).astype(np.float32)


def _fit(path: str, features, input_shape):
  """Matches loaded arrays to the input names and shapes."""
  if isinstance(features, dict) and not isinstance(input_shape, dict):
    if len(features) != 1:
      raise DataError(f"{path} holds {len(features)} arrays"
                      f" ({', '.join(sorted(features))}); the model has one"
                      " input, so give it one.")
    features = next(iter(features.values()))
  if isinstance(input_shape, dict):
    if not isinstance(features, dict) or set(features) != set(input_shape):
      raise DataError(f"the model's inputs are {', '.join(sorted(input_shape))};"
                      f" give {path} as an .npz with exactly these keys.")
    fitted = {name: _reshape(f"{path}[{name}]", features[name], shape)
              for name, shape in input_shape.items()}
    if len({len(array) for array in fitted.values()}) != 1:
      raise DataError(f"the arrays in {path} differ in their numbers of"
                      " examples.")
    return fitted
  return _reshape(path, features, tuple(input_shape))


def _reshape(what: str, array: np.ndarray, shape: tuple[int, ...]):
  if not np.issubdtype(array.dtype, np.number):
    raise DataError(f"{what} holds {array.dtype}, not numbers.")
  if tuple(array.shape[1:]) == shape:
    return array
  size = int(np.prod(shape))
  if array.ndim >= 1 and int(np.prod(array.shape[1:])) == size:
    return array.reshape((len(array), *shape))
  raise DataError(f"{what} has examples of shape {tuple(array.shape[1:])};"
                  f" the model takes {shape} ({size} values each).")


def write_predictions(path: str, predictions) -> None:
  """Writes `predictions` to `.npy`, `.npz` (key "predictions") or `.csv`.

  A dict of outputs (a multi-output model) needs `.npz`: one key each. The
  file appears complete or not at all (written aside, then renamed).
  """
  suffix = os.path.splitext(path)[1].lower()
  if suffix not in FEATURE_SUFFIXES:
    raise DataError(f"{path}: the output must end in"
                    f" {', '.join(FEATURE_SUFFIXES)}.")
  if isinstance(predictions, dict) and suffix != ".npz":
    raise DataError(f"the model has the outputs {', '.join(sorted(predictions))};"
                    f" write them to an .npz, not {path}.")
  is_text = (not isinstance(predictions, dict)
             and predictions.dtype.kind == "U")
  staging = os.path.join(os.path.dirname(os.path.abspath(path)),
                         f".{os.path.basename(path)}.partial{suffix}")
  try:
    if suffix == ".npy":
      np.save(staging, predictions)
    elif suffix == ".npz":
      np.savez(staging, **(predictions if isinstance(predictions, dict)
                           else {"predictions": predictions}))
    elif is_text:  # Class names: one per line.
      with open(staging, "w", encoding="utf-8") as stream:
        stream.writelines(f"{name}\n" for name in predictions)
    else:  # 9 significant digits round-trip float32 exactly.
      np.savetxt(staging, predictions.reshape(len(predictions), -1),
                 delimiter=",", fmt="%.9g")
    os.replace(staging, path)
  finally:
    if os.path.exists(staging):
      os.remove(staging)
