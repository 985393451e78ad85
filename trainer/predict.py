"""Predictions from an export written by `trainer.export`, in any process.

Only the SavedModel's `serve` endpoint and `metadata.json` are used, so a
fresh process needs neither the harness's model code nor the training data.
"""

import json
import os

import numpy as np
import tensorflow as tf

from trainer import export


class ExportError(ValueError):
  """The export cannot be loaded; the message is one sentence."""


def read_metadata(export_dir: str) -> dict:
  """The export's metadata; `input_shape` as a tuple or dict of tuples."""
  path = os.path.join(export_dir, export.METADATA_FILENAME)
  try:
    with open(path, encoding="utf-8") as file:
      metadata = json.load(file)
  except FileNotFoundError:
    raise ExportError(f"{export_dir} is not an export of this harness (no"
                      f" {export.METADATA_FILENAME}).") from None
  except (OSError, ValueError) as error:
    raise ExportError(f"{path} is unreadable ({error}).") from None
  shape = metadata.get("input_shape")
  metadata["input_shape"] = ({k: tuple(v) for k, v in shape.items()}
                             if isinstance(shape, dict) else tuple(shape))
  return metadata


def predict(export_dir: str, features, *, batch_size: int = 256,
            scale_inputs: bool = True) -> np.ndarray:
  """Runs the exported network over `features` in batches.

  Args:
    export_dir: A `model_dir/export` directory.
    features: Raw features [N, ...] as the dataset stores them (or a dict of
      them for named inputs); cast to float32.
    batch_size: Examples per call.
    scale_inputs: Multiply by the training pipeline's `feature_scale` first
      (False when `features` are already scaled).

  Returns:
    The network's outputs [N, units], float32: logits or probabilities, as
    trained (see `metadata.json`'s `from_logits`); a dict of them for a
    multi-output model.

  Raises:
    ExportError: If the SavedModel cannot be loaded.
  """
  metadata = read_metadata(export_dir)
  scale = metadata["feature_scale"] if scale_inputs else 1.0
  try:
    # Keep the loaded object: its variables die with it, not with `serve`.
    loaded = tf.saved_model.load(
        os.path.join(export_dir, export.SAVED_MODEL_SUBDIR))
  except (OSError, ValueError, AttributeError) as error:
    raise ExportError(f"cannot load the SavedModel in {export_dir}"
                      f" ({type(error).__name__}).") from None

  def prepare(array):
    array = np.asarray(array, dtype=np.float32)
    return array * np.float32(scale) if scale != 1.0 else array

  features = tf.nest.map_structure(prepare, features)
  total = len(tf.nest.flatten(features)[0])
  outputs = []
  for start in range(0, total, batch_size):
    batch = tf.nest.map_structure(lambda a: a[start:start + batch_size],
                                  features)
    outputs.append(tf.nest.map_structure(lambda t: t.numpy(),
                                         loaded.serve(batch)))
  if not outputs:
    raise ExportError("the input holds no examples.")
  return tf.nest.map_structure(lambda *parts: np.concatenate(parts), *outputs)
