"""Export of the trained network: SavedModel (serving) and `.keras`.

The export is written next to its destination and renamed into place, so a
crash never leaves a half-written `export/`. Every worker must call
`export_model` (saving reads distributed variables); only the chief keeps it.
"""

import json
import os
import shutil
import tempfile

from absl import logging
import keras

SAVED_MODEL_SUBDIR = "saved_model"
KERAS_FILENAME = "model.keras"
METADATA_FILENAME = "metadata.json"


def _write_export(network: keras.Model, directory: str,
                  metadata: dict) -> None:
  with open(os.path.join(directory, METADATA_FILENAME), "w",
            encoding="utf-8") as file:
    json.dump(metadata, file, indent=2, sort_keys=True)
  network.export(os.path.join(directory, SAVED_MODEL_SUBDIR),
                 format="tf_saved_model", verbose=False)
  try:
    network.save(os.path.join(directory, KERAS_FILENAME))
  except Exception as error:  # Custom layers without get_config, etc.
    logging.warning("Skipped the .keras export: %s", error)


def export_model(network: keras.Model, directory: str, *, is_chief: bool,
                 metadata: dict | None = None) -> str | None:
  """Exports `network` to `directory` atomically.

  Args:
    network: The model to export (the wrapped network of a harness Model).
    directory: Final directory, e.g. `model_dir/export`; replaced if present.
    is_chief: Non-chief workers export into a temporary directory that is
      removed.
    metadata: JSON-able facts a predictor needs besides the network (e.g.
      how raw features are scaled), written to `metadata.json`.

  Returns:
    `directory` on the chief, None elsewhere.
  """
  parent = os.path.dirname(os.path.abspath(directory)) if is_chief else None
  staging = tempfile.mkdtemp(prefix=".export-", dir=parent)
  try:
    _write_export(network, staging, metadata or {})
    if not is_chief:
      return None
    retired = None
    if os.path.exists(directory):
      retired = tempfile.mkdtemp(prefix=".export-old-", dir=parent)
      os.rename(directory, os.path.join(retired, "export"))
    os.rename(staging, directory)
    staging = None
    if retired:
      shutil.rmtree(retired, ignore_errors=True)
    logging.info("Exported the model to %s.", directory)
    return directory
  finally:
    if staging:
      shutil.rmtree(staging, ignore_errors=True)
