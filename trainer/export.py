"""Export of the trained network: SavedModel (serving) and `.keras`.

The export is written next to its destination and renamed into place, so a
crash never leaves a half-written `export/`. Every worker must call
`export_model` (saving reads distributed variables); only the chief keeps it.

What each artefact returns, for a network trained on logits (the built-in
networks' default) with a cross-entropy loss:

* SavedModel signature `serving_default` (TF Serving's default, also
  `loaded.serving_default(x)` after `tf.saved_model.load`): a dict
  `{"logits": [N, k], "probabilities": [N, k]}`; probabilities are the
  softmax of the logits for (sparse) categorical cross-entropy and their
  sigmoid (probability of class 1, [N, 1]) for binary cross-entropy.
* SavedModel endpoint `serve` (Keras's name, `loaded.serve(x)`): the
  network's outputs as they are, i.e. the logits.
* `model.keras`: the trained network as it is, i.e. the logits.

A network that already emits probabilities (softmax/sigmoid output,
`from_logits=False`) gets `{"probabilities": ...}` only: nothing is applied
twice. A multi-output network gets those keys per output, prefixed with the
output's name (`digit_logits`, `digit_probabilities`, `large_logits`, ...).
Outputs that are neither (regression, or a loss this module does not know)
keep the key Keras gives them (`output_0`, or the output's name).
`metadata.json` says all of this.
"""

import json
import os
import shutil
import tempfile

from absl import logging
import keras
import tensorflow as tf

from trainer import private_apis

SAVED_MODEL_SUBDIR = "saved_model"
KERAS_FILENAME = "model.keras"
METADATA_FILENAME = "metadata.json"

# Losses whose targets are classes: the activation that turns the network's
# logits into the probabilities the loss compares with the labels.
_ACTIVATIONS = {
    "sparse_categorical_crossentropy": "softmax",
    "categorical_crossentropy": "softmax",
    "categorical_focal_crossentropy": "softmax",
    "binary_crossentropy": "sigmoid",
    "binary_focal_crossentropy": "sigmoid",
}
# Losses of regression targets, as `loss_metadata` names them (the options'
# "mse"; Keras's function and class names).
REGRESSION_LOSSES = ("mse", "mean_squared_error", "mean_absolute_error",
                     "mean_absolute_percentage_error",
                     "mean_squared_logarithmic_error", "huber", "log_cosh")
_LOSS_CLASSES = {
    keras.losses.SparseCategoricalCrossentropy:
        "sparse_categorical_crossentropy",
    keras.losses.CategoricalCrossentropy: "categorical_crossentropy",
    keras.losses.CategoricalFocalCrossentropy:
        "categorical_focal_crossentropy",
    keras.losses.BinaryCrossentropy: "binary_crossentropy",
    keras.losses.BinaryFocalCrossentropy: "binary_focal_crossentropy",
}


def _per_output(function, *structures):
  """`function` of each output's entries: one level of dict or list."""
  first = structures[0]

  def entry(structure, key):
    return structure[key] if isinstance(structure, (dict, list, tuple)) \
        else structure  # A bool or name shared by every output.

  if isinstance(first, dict):
    return {key: function(*(entry(s, key) for s in structures))
            for key in first}
  if isinstance(first, (list, tuple)):
    return [function(*(entry(s, index) for s in structures))
            for index in range(len(first))]
  return function(*structures)


def _loss_name(loss, from_logits: bool) -> tuple[str | None, bool]:
  if loss is None:
    return None, bool(from_logits)
  if isinstance(loss, str):
    if loss in _ACTIVATIONS or loss == "mse":  # The options' names.
      return loss, bool(from_logits)
    try:  # Keras's other spellings, e.g. "SparseCategoricalCrossentropy".
      return _loss_name(keras.losses.get(loss), False)
    except ValueError:
      return loss, bool(from_logits)
  if isinstance(loss, keras.losses.Loss):
    config = loss.get_config()
    name = next((name for cls, name in _LOSS_CLASSES.items()
                 if isinstance(loss, cls)), config.get("name") or
                type(loss).__name__)
    return name, bool(config.get("from_logits", False))
  # Keras's loss functions (`keras.losses.binary_crossentropy`) default to
  # probabilities; any other function is the user's own.
  name = getattr(loss, "__name__", type(loss).__name__)
  return name, False


def loss_metadata(loss, *, from_logits: bool = False) -> dict:
  """The JSON-able `loss` and `from_logits` of a trained network.

  Args:
    loss: What the model was trained with: a loss name (the options' or
      Keras's), a `keras.losses.Loss`, a Keras loss function, or a dict or
      list of them per output (as `compile()` takes them).
    from_logits: For loss names only: whether the network emits logits (the
      `from_logits` option). Keras reads a name in `compile()` as
      probabilities, so leave it False for those; a `Loss` object says its
      own.

  Returns:
    `{"loss": name, "from_logits": bool}`, with a dict (list) of each per
    output for a dict (list) of losses.
  """
  return {"loss": _per_output(lambda one: _loss_name(one, from_logits)[0],
                              loss),
          "from_logits": _per_output(
              lambda one: _loss_name(one, from_logits)[1], loss)}


def model_loss_metadata(model: keras.Model, *, loss,
                        from_logits: bool) -> dict:
  """`loss_metadata` of the loss `model` trained with.

  Args:
    model: The trained model (not its `network`).
    loss: The options' loss name (a dict of names per output), which the
      harness's own losses were built from.
    from_logits: The options' `from_logits`.

  Returns:
    For a compiled model, what `compile()` got (its `Loss` objects say
    their `from_logits`; names and functions mean probabilities, as in
    Keras; no loss gives `"loss": None`). For a harness `trainer.model.Model`
    whose `loss_fn` is a Keras `Loss` (a builder's own or the user's), that
    loss. Otherwise `loss` and `from_logits`.
  """
  # Imported here: `trainer.predict` imports this module in a fresh process
  # and needs none of the model-building code.
  from trainer import user_models
  if user_models.is_compiled(model):
    return loss_metadata(_in_output_order(model, model.loss))
  loss_fn = getattr(model, "loss_fn", None)
  owner = getattr(loss_fn, "__self__", None)  # A bound `Loss.call`.
  for candidate in (loss_fn, owner):
    if isinstance(candidate, keras.losses.Loss):
      return loss_metadata(candidate)
  return loss_metadata(loss, from_logits=from_logits)


def _in_output_order(model: keras.Model, loss):
  """compile()'s dict of losses as a list when the outputs are a list.

  `compile(loss={"digit": ..., "large": ...})` names a functional model's
  list outputs by their layers (`model.output_names`); the export sees
  the list, so the losses follow its order.
  """
  if not isinstance(loss, dict):
    return loss
  try:
    structure = model.output  # A list, or a dict for dict outputs.
  except (AttributeError, ValueError):  # Subclassed: no symbolic outputs.
    return loss
  names = list(getattr(model, "output_names", None) or [])
  if (isinstance(structure, (list, tuple)) and len(structure) > 1
      and sorted(names) == sorted(loss)):
    return [loss[name] for name in names]
  return loss


def output_kinds(metadata: dict):
  """What the network emits per output, from `metadata`'s loss facts.

  Returns:
    `(outputs, activation)`: `outputs` is "logits", "probabilities" or
    "values" (regression, or a loss this module does not know), and
    `activation` "softmax", "sigmoid" (turns those logits into
    probabilities) or None; each a dict (list) per output when `loss` is.
  """

  def kind(loss, from_logits):
    activation = _ACTIVATIONS.get(loss) if isinstance(loss, str) else None
    if activation is None:
      return "values", None
    return ("logits", activation) if from_logits else ("probabilities", None)

  loss, from_logits = (metadata.get("loss"),
                       metadata.get("from_logits", False))
  return (_per_output(lambda *one: kind(*one)[0], loss, from_logits),
          _per_output(lambda *one: kind(*one)[1], loss, from_logits))


def to_probabilities(outputs, activations):
  """Applies each output's activation ("softmax", "sigmoid" or None).

  The SavedModel's `serving_default` and `python -m launch.predict` both
  use this, so their probabilities agree.
  """

  def apply(values, activation):
    if activation is None:
      return values
    values = tf.cast(values, tf.float32)
    return (tf.nn.softmax(values, axis=-1) if activation == "softmax"
            else tf.sigmoid(values))

  return _per_output(apply, outputs, _matching(outputs, activations))


def _matching(outputs, per_output):
  """`per_output` shaped like `outputs`.

  One value (a name, a bool) holds for every output; entries of a
  structure that does not fit the outputs are None (kept as they are).
  """
  structured = isinstance(per_output, (dict, list, tuple))
  if isinstance(outputs, dict):
    if isinstance(per_output, dict):
      return {key: per_output.get(key) for key in outputs}
    return {key: None if structured else per_output for key in outputs}
  if isinstance(outputs, (list, tuple)):
    if (isinstance(per_output, (list, tuple))
        and len(per_output) == len(outputs)):
      return list(per_output)
    return [None if structured else per_output for _ in outputs]
  if structured and len(per_output) == 1:  # compile(loss={name: ...}).
    return next(iter(per_output.values() if isinstance(per_output, dict)
                     else per_output))
  return None if structured else per_output


# Keras's own signature key for a single output, kept for outputs that are
# neither logits nor probabilities (a regression keeps its old key).
_AS_IS = "output_0"


def _serving_outputs(outputs, kinds, activations) -> dict:
  """The flat dict `serving_default` returns (see the module docstring)."""
  if isinstance(outputs, (list, tuple)):  # Keras's keys: output_0, ...
    keys = [f"output_{index}" for index in range(len(outputs))]
    kinds, activations = (dict(zip(keys, _matching(outputs, kinds))),
                          dict(zip(keys, _matching(outputs, activations))))
    outputs = dict(zip(keys, outputs))
  if isinstance(outputs, dict):
    kinds, activations = (_matching(outputs, kinds),
                          _matching(outputs, activations))
    named = {}
    for key, values in outputs.items():
      for name, tensor in _serving_outputs(values, kinds[key],
                                           activations[key]).items():
        named[f"{key}_{name}" if name != _AS_IS else key] = tensor
    return named
  if activations is not None:
    return {"logits": outputs,
            "probabilities": to_probabilities(outputs, activations)}
  return {"probabilities" if kinds == "probabilities" else _AS_IS: outputs}


def _input_signature(network: keras.Model):
  """The input specs `network.export()` would use (a private Keras call)."""
  return private_apis.export_input_signature(network)


def _write_saved_model(network: keras.Model, path: str, kinds, activations):
  """Writes the SavedModel.

  `serve` is what `network.export(path, format="tf_saved_model")` writes;
  `serving_default` is added as an endpoint (not only a signature) so that
  Python can call it positionally, as `serve`.

  Returns:
    `(kinds, activations, names)`: the first two shaped like the network's
    outputs, and the sorted keys `serving_default` returns.
  """
  archive = keras.export.ExportArchive()
  signature = _input_signature(network)
  serve = archive.track_and_add_endpoint("serve", network, signature)
  structure = serve.get_concrete_function().structured_outputs
  kinds, activations = (_matching(structure, kinds),
                        _matching(structure, activations))
  serving_default = archive.add_endpoint(
      "serving_default",
      lambda *inputs: _serving_outputs(serve(*inputs), kinds, activations),
      signature)
  archive.write_out(path, verbose=False)
  names = serving_default.get_concrete_function().structured_outputs
  return kinds, activations, sorted(names)


def _describe(outputs, activations, serving_names,
              keras_skipped: str | None) -> dict:
  """The metadata keys that say what each artefact returns."""
  if keras_skipped:
    keras_note = f"not written: {keras_skipped}"
  elif isinstance(outputs, str):
    keras_note = f"{outputs}: the trained network as it is"
    if activations is not None:
      layer = ("Softmax()" if activations == "softmax"
               else "Activation('sigmoid')")
      keras_note += (f"; keras.Sequential([model, keras.layers.{layer}])"
                     " gives probabilities")
  else:
    keras_note = ("the trained network as it is, per output as in"
                  " `outputs`; `activation` turns logits into probabilities")
  return {"outputs": outputs, "activation": activations,
          "saved_model": {"serve": outputs,
                          "serving_default": serving_names},
          "model.keras": keras_note}


def _write_export(network: keras.Model, directory: str,
                  metadata: dict) -> None:
  outputs, activations, serving_names = _write_saved_model(
      network, os.path.join(directory, SAVED_MODEL_SUBDIR),
      *output_kinds(metadata))
  skipped = None
  try:
    network.save(os.path.join(directory, KERAS_FILENAME))
  except Exception as error:  # Custom layers without get_config, etc.
    logging.warning("Skipped the .keras export: %s", error)
    skipped = str(error) or type(error).__name__
  metadata = dict(metadata, **_describe(outputs, activations, serving_names,
                                        skipped))
  with open(os.path.join(directory, METADATA_FILENAME), "w",
            encoding="utf-8") as file:
    json.dump(metadata, file, indent=2, sort_keys=True)


def export_model(network: keras.Model, directory: str, *, is_chief: bool,
                 metadata: dict | None = None) -> str | None:
  """Exports `network` to `directory` atomically.

  Args:
    network: The model to export (the wrapped network of a harness Model).
    directory: Final directory, e.g. `model_dir/export`; replaced if present.
    is_chief: Non-chief workers export into a temporary directory that is
      removed.
    metadata: JSON-able facts a predictor needs besides the network (e.g.
      how raw features are scaled), written to `metadata.json`. Its `loss`
      and `from_logits` (see `loss_metadata`) say what the network emits:
      with logits of a cross-entropy loss, `serving_default` also returns
      probabilities. `outputs`, `activation`, `saved_model` and
      `model.keras` are added: what each artefact returns.

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
