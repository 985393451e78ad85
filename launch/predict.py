"""`python -m launch.predict`: predictions from an export, in a fresh process.

  python -m launch.predict --export_dir=/tmp/run/export \\
      --input=features.npy --output=predictions.npy

Inputs are raw features as the dataset stores them (e.g. digits pixels
0..16); they are scaled as in training unless `--noscale_inputs`. A model
trained on an image folder takes an image file or a folder of images
(resized and scaled as in training; `NAME.files.txt` lists them in the
order of the predictions); a model trained on a CSV takes a CSV with its
header row (columns matched by name, the label column ignored). The output
holds probabilities [N, units] when the export has them: the network's own
(softmax/sigmoid output), or the softmax/sigmoid of its logits, as the
SavedModel's `serving_default` returns them. `--noprobabilities` writes the
network's outputs as they are (logits, as the `serve` endpoint), and a
regression's outputs (the predicted values) are written as they are either
way. With `--classes` a second file `NAME.classes.EXT` holds the predicted
class of each example: its name when the export has class names (text
labels, image folders), one per line in a `.csv`, else its index.
Exit codes: 0 done, 2 bad input.
"""

import os

from absl import app
from absl import flags

from launch.cli import console
from launch.cli.errors import fail, parse_flags

_EXPORT_DIR = flags.DEFINE_string(
    "export_dir", None, "The run's export directory (model_dir/export).")
_INPUT = flags.DEFINE_string(
    "input", None, "Features: .npy, .npz (one array per named input), .csv"
    " (one example per row, a header row optional), or an image file or"
    " folder of images for a model trained on images.",)
_OUTPUT = flags.DEFINE_string(
    "output", None, "Where to write the outputs: .npy, .npz or .csv.")
_BATCH_SIZE = flags.DEFINE_integer(
    "batch_size", 256, "Examples per call of the model.",)
_SCALE_INPUTS = flags.DEFINE_boolean(
    "scale_inputs", True, "Scale raw features as the training pipeline did.")
_CLASSES = flags.DEFINE_boolean(
    "classes", False, "Also write the predicted class of each example (its"
    " name when the export has class names) to NAME.classes.EXT.")
_PROBABILITIES = flags.DEFINE_boolean(
    "probabilities", True, "Write probabilities when the network emits logits"
    " of a cross-entropy loss (softmax or sigmoid, as the SavedModel's"
    " serving_default); --noprobabilities writes the logits.")


def _classes(outputs, emits: str | None):
  """The class of each example, from the network's outputs as they are."""
  import numpy as np
  if outputs.shape[-1] == 1:  # Binary: a logit or a probability.
    threshold = 0.0 if emits == "logits" else 0.5
    return (outputs[:, 0] > threshold).astype(np.int32)
  return outputs.argmax(axis=-1).astype(np.int32)


def _entry(per_output, name):
  """One output's entry: `per_output` is a dict or list, or one for all."""
  if isinstance(per_output, dict):
    return per_output.get(name)
  if isinstance(per_output, list):
    return per_output[name] if name < len(per_output) else None
  return per_output


def _by_key(per_output, keys):
  """A list of per-output entries as a dict of `keys`; others unchanged."""
  return (dict(zip(keys, per_output)) if isinstance(per_output, list)
          else per_output)


def _what_was_written(emits, activations) -> str:
  """E.g. "probabilities (softmax of the network's logits)"."""
  if isinstance(emits, (dict, list)):
    names = emits if isinstance(emits, dict) else range(len(emits))
    return ", ".join(
        f"{name}: {_what_was_written(emits[name], _entry(activations, name))}"
        for name in names)
  if emits == "logits" and activations and _PROBABILITIES.value:
    return f"probabilities ({activations} of the network's logits)"
  return emits if emits in ("logits", "probabilities") else (
      "the network's outputs")


def main(argv: list[str]) -> None:
  del argv  # The program name only: parse_flags refuses the rest.
  for flag in (_EXPORT_DIR, _INPUT, _OUTPUT):
    if not flag.value:
      fail(f"--{flag.name} is required.")
  if _BATCH_SIZE.value < 1:
    fail(f"--batch_size={_BATCH_SIZE.value} must be positive.")
  output_dir = os.path.dirname(os.path.abspath(_OUTPUT.value))
  if not os.path.isdir(output_dir):
    fail(f"the directory of --output={_OUTPUT.value} does not exist.")
  console.import_tensorflow()  # Quietly, after the checks.
  from datasets import files
  from datasets.errors import DataError
  from trainer import export  # Imports TensorFlow: after the checks.
  from trainer import predict
  try:
    metadata = predict.read_metadata(_EXPORT_DIR.value)
    if _CLASSES.value and metadata.get("task") == "regression":
      fail("--classes needs a classifier, but this export is a regression"
           " (its outputs are the predicted values); leave --classes out.")
    features, image_paths = _load_input(_INPUT.value, metadata, files)
    outputs = predict.predict(_EXPORT_DIR.value, features,
                              batch_size=_BATCH_SIZE.value,
                              scale_inputs=_SCALE_INPUTS.value)
    emits, activations = _output_kinds(metadata)
    if isinstance(outputs, (list, tuple)):  # Keras's names for a list.
      keys = [f"output_{index}" for index in range(len(outputs))]
      outputs = dict(zip(keys, outputs))
      emits, activations = (_by_key(emits, keys), _by_key(activations, keys))
    written = (_to_probabilities(outputs, activations, export)
               if _PROBABILITIES.value else outputs)
    files.write_predictions(_OUTPUT.value, written)
    if _CLASSES.value:
      stem, suffix = os.path.splitext(_OUTPUT.value)
      classes = (_classes(outputs, emits) if not isinstance(outputs, dict)
                 else {name: _classes(values, _entry(emits, name))
                       for name, values in outputs.items()})
      files.write_predictions(f"{stem}.classes{suffix}",
                              _named(classes, metadata.get("class_names")))
    if image_paths is not None:
      with open(f"{os.path.splitext(_OUTPUT.value)[0]}.files.txt", "w",
                encoding="utf-8") as stream:
        stream.writelines(f"{path}\n" for path in image_paths)
  except (DataError, predict.ExportError) as error:
    fail(str(error))
  shapes = ({name: values.shape[1:] for name, values in written.items()}
            if isinstance(written, dict) else written.shape[1:])
  count = len(next(iter(written.values())) if isinstance(written, dict)
              else written)
  print(f"Wrote {count} predictions of shape {shapes} to {_OUTPUT.value}:"
        f" {_what_was_written(emits, activations)}.", flush=True)


def _load_input(path: str, metadata: dict, files):
  """(features, image paths or None) of --input, read as in training."""
  from datasets.errors import DataError
  from datasets.images import IMAGE_EXTENSIONS
  input_format = metadata.get("input_format") or {}
  is_image = os.path.isdir(path) or path.lower().endswith(IMAGE_EXTENSIONS)
  if not is_image:
    return files.load_features(path, metadata["input_shape"],
                               input_format.get("feature_names")), None
  if input_format.get("kind") != "images":
    raise DataError(f"--input={path} holds images, but this export was not"
                    " trained on an image folder; give a .npy, .npz or .csv.")
  paths = files.list_images(path)
  return files.load_images(paths, image_size=input_format["image_size"],
                           channels=input_format["channels"]), paths


def _named(classes, class_names):
  """Class indices as their names, when the export has them."""
  import numpy as np
  if not class_names:
    return classes
  names = np.array(class_names)
  if isinstance(classes, dict):
    return classes  # Several outputs: the names are of one label.
  return names[classes]


def _output_kinds(metadata: dict):
  """`(outputs, activation)` as the export wrote them in metadata.json.

  An export written before those keys existed has no probabilities
  endpoint (and its `loss` may not be the model's): its outputs are
  written as they are, as then.
  """
  if "outputs" in metadata:
    return metadata["outputs"], metadata.get("activation")
  return ("logits" if metadata.get("from_logits", True) else "probabilities",
          None)


def _to_probabilities(outputs, activations, export):
  """The probabilities the SavedModel's `serving_default` returns."""
  import numpy as np
  import tensorflow as tf
  return tf.nest.map_structure(
      np.asarray, export.to_probabilities(outputs, activations))


def run() -> None:
  console.configure_logging(owns_stderr=True)
  app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
  run()
