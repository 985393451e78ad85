"""`python -m launch.predict`: predictions from an export, in a fresh process.

  python -m launch.predict --export_dir=/tmp/run/export \\
      --input=features.npy --output=predictions.npy

Inputs are raw features as the dataset stores them (e.g. digits pixels
0..16); they are scaled as in training unless `--noscale_inputs`. The output
holds the network's outputs [N, units] (logits or probabilities, as
trained), and with `--classes` a second file `NAME.classes.EXT` with the
predicted class of each example. Exit codes: 0 done, 2 bad input.
"""

import os

from absl import app
from absl import flags

from launch.errors import fail, parse_flags

_EXPORT_DIR = flags.DEFINE_string(
    "export_dir", None, "The run's export directory (model_dir/export).")
_INPUT = flags.DEFINE_string(
    "input", None, "Features: .npy, .npz (one array per named input) or"
    " .csv (one example per row).",)
_OUTPUT = flags.DEFINE_string(
    "output", None, "Where to write the outputs: .npy, .npz or .csv.")
_BATCH_SIZE = flags.DEFINE_integer(
    "batch_size", 256, "Examples per call of the model.",)
_SCALE_INPUTS = flags.DEFINE_boolean(
    "scale_inputs", True, "Scale raw features as the training pipeline did.")
_CLASSES = flags.DEFINE_boolean(
    "classes", False, "Also write the predicted class of each example.")



def _classes(outputs, metadata):
  import numpy as np
  if outputs.shape[-1] == 1:  # Binary: a logit or a probability.
    threshold = 0.0 if metadata.get("from_logits", True) else 0.5
    return (outputs[:, 0] > threshold).astype(np.int32)
  return outputs.argmax(axis=-1).astype(np.int32)


def _parse(argv: list[str]) -> list[str]:
  try:
    return flags.FLAGS(argv)
  except flags.Error as error:
    fail(f"{error}. See --helpfull.")


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
  from datasets import files
  from datasets.errors import DataError
  from trainer import predict  # Imports TensorFlow: after the checks.
  try:
    metadata = predict.read_metadata(_EXPORT_DIR.value)
    features = files.load_features(_INPUT.value, metadata["input_shape"])
    outputs = predict.predict(_EXPORT_DIR.value, features,
                              batch_size=_BATCH_SIZE.value,
                              scale_inputs=_SCALE_INPUTS.value)
    files.write_predictions(_OUTPUT.value, outputs)
    if _CLASSES.value:
      stem, suffix = os.path.splitext(_OUTPUT.value)
      classes = (_classes(outputs, metadata) if not isinstance(outputs, dict)
                 else {name: _classes(values, metadata)
                       for name, values in outputs.items()})
      files.write_predictions(f"{stem}.classes{suffix}", classes)
  except (DataError, predict.ExportError) as error:
    fail(str(error))
  shapes = ({name: values.shape[1:] for name, values in outputs.items()}
            if isinstance(outputs, dict) else outputs.shape[1:])
  count = len(next(iter(outputs.values())) if isinstance(outputs, dict)
              else outputs)
  print(f"Wrote {count} predictions of shape {shapes} to {_OUTPUT.value}.",
        flush=True)


def run() -> None:
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
  run()
