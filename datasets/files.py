"""Feature files for prediction: `.npy`, `.npz` and `.csv`.

* `.npy`: one array [N, ...] (a single-input model).
* `.npz`: one array per named input (keys = input names), or a single array
  (any key) for a single-input model.
* `.csv`: one example per row, numbers only, no header; each row is reshaped
  to the model's input shape (single-input models).
"""

import os
import zipfile

import numpy as np

from datasets.errors import DataError

FEATURE_SUFFIXES = (".npy", ".npz", ".csv")


def load_features(path: str, input_shape):
  """Reads `path` and checks it against the model's input shape.

  Args:
    path: A `.npy`, `.npz` or `.csv` file.
    input_shape: Shape of one example: a tuple, or a dict name -> tuple for
      a model with named inputs.

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
      features = np.loadtxt(path, delimiter=",", dtype=np.float32, ndmin=2)
  except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
    raise DataError(f"{path} is not a readable {suffix} file"
                    f" ({type(error).__name__}: {error}).") from None
  return _fit(path, features, input_shape)


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
  staging = os.path.join(os.path.dirname(os.path.abspath(path)),
                         f".{os.path.basename(path)}.partial{suffix}")
  try:
    if suffix == ".npy":
      np.save(staging, predictions)
    elif suffix == ".npz":
      np.savez(staging, **(predictions if isinstance(predictions, dict)
                           else {"predictions": predictions}))
    else:  # 9 significant digits round-trip float32 exactly.
      np.savetxt(staging, predictions.reshape(len(predictions), -1),
                 delimiter=",", fmt="%.9g")
    os.replace(staging, path)
  finally:
    if os.path.exists(staging):
      os.remove(staging)
