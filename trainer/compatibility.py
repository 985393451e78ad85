"""Does the user's model fit the data? Checked before anything is written.

Keras finds a model that does not fit its data only when it runs: a shape
error cut down to "Exception encountered when calling Sequential.call()",
or an `InvalidArgumentError` many lines long at the first step, or worse,
no error (binary cross-entropy on labels 0..2 trains without a word). These
checks compare the model with the data's `element_spec` and the source's
class count, and raise `Mismatch` (a ValueError): one sentence naming the
cause and the fix.

* `check_inputs`: the model's declared inputs (Sequential or functional
  with `keras.Input`) against the features: names, shapes, strings.
* `check_labels`: each output against its labels and loss (compile()'s or
  the configured one): units vs classes, one-hot width, label values,
  dict keys, number of outputs.
"""

import keras
import tensorflow as tf

SPARSE = "sparse_categorical_crossentropy"
CATEGORICAL = ("categorical_crossentropy", "categorical_focal_crossentropy")
BINARY = ("binary_crossentropy", "binary_focal_crossentropy")
REGRESSION = ("mean_squared_error", "mean_absolute_error",
              "mean_absolute_percentage_error",
              "mean_squared_logarithmic_error", "huber", "log_cosh")
_ALIASES = {"mse": "mean_squared_error", "mae": "mean_absolute_error",
            "mape": "mean_absolute_percentage_error",
            "msle": "mean_squared_logarithmic_error", "huber_loss": "huber",
            "logcosh": "log_cosh"}
# The configured metrics that one-hot the labels with the class count.
_ONE_HOT_METRICS = ("precision", "recall", "auc", "mse")


class Mismatch(ValueError):
  """The model and the data do not fit: one sentence, cause and fix."""


def _shape(spec) -> tuple:
  """An example's shape: without the batch dimension."""
  return tuple(spec.shape[1:]) if spec.shape.rank is not None else ()


def _text(shape) -> str:
  return "(" + ", ".join("None" if n is None else str(n) for n in shape) + (
      ",)" if len(shape) == 1 else ")")


def _fits(expected, found) -> bool:
  """Same rank, and every dimension known on both sides is equal."""
  return len(expected) == len(found) and all(
      a is None or b is None or a == b for a, b in zip(expected, found))


def named(structure) -> dict:
  """{name: leaf}: "" for a single tensor, keys or positions otherwise."""
  if isinstance(structure, dict):
    return dict(structure)
  if isinstance(structure, (list, tuple)):
    return {str(index): leaf for index, leaf in enumerate(structure)}
  return {"": structure}


def _declared_inputs(model):
  """The model's `keras.Input`s (a dict for named inputs), or None."""
  for attribute in ("input", "inputs"):  # A Sequential has only `inputs`.
    try:
      declared = getattr(model, attribute)
    except (AttributeError, ValueError):
      continue  # Subclassed, or a Sequential without an Input.
    if declared is not None:
      return declared
  return None


def check_inputs(model: keras.Model, features_spec, *, data: str) -> None:
  """Compares the model's declared inputs with the data's features.

  Args:
    model: The user's model (nothing to check without declared inputs).
    features_spec: `tf.TensorSpec` structure of one batch's features.
    data: Names the data in messages, e.g. "the training data".

  Raises:
    Mismatch: If names, shapes or string-ness differ.
  """
  declared = _declared_inputs(model)
  if declared is None:
    return
  if isinstance(declared, (list, tuple)) and len(declared) == 1:
    declared = declared[0]
  if isinstance(declared, dict) and isinstance(features_spec, dict):
    missing = sorted(set(declared) - set(features_spec))
    if missing:
      raise Mismatch(
          f"the model's input {missing[0]!r} is missing from {data}, whose"
          f" features are {', '.join(sorted(features_spec))}; give one"
          " feature per model input, named like the keras.Input.")
    pairs = [(name, declared[name], features_spec[name]) for name in declared]
  elif isinstance(declared, (dict, list, tuple)):
    names = (", ".join(sorted(declared)) if isinstance(declared, dict)
             else f"{len(declared)} inputs")
    given = ("features " + ", ".join(sorted(features_spec))
             if isinstance(features_spec, dict) else "one features array")
    raise Mismatch(f"the model takes the inputs {names}, but {data} has"
                     f" {given}; give the features as a dict, one array per"
                     " model input.")
  elif isinstance(features_spec, dict):
    if len(features_spec) != 1:
      raise Mismatch(
          f"the model takes one input, but {data} has the features"
          f" {', '.join(sorted(features_spec))}; give the model one"
          " keras.Input per feature (a dict of Inputs), or one array.")
    name, spec = next(iter(features_spec.items()))
    pairs = [(name, declared, spec)]
  else:
    pairs = [("", declared, features_spec)]
  for name, tensor, spec in pairs:
    _check_input(name, tensor, spec, data)


def _check_input(name: str, tensor, spec, data: str) -> None:
  subject = f"{data}'s feature {name!r}" if name else f"{data}'s features"
  has, are = ("has", "is") if name else ("have", "are")
  model = f"the model's input {name!r} expects" if name else "the model expects"
  expected, found = tuple(tensor.shape[1:]), _shape(spec)
  is_string = spec.dtype == tf.string
  if is_string != (keras.backend.standardize_dtype(tensor.dtype) == "string"):
    if is_string:
      raise Mismatch(
          f"{model} {tensor.dtype} values, but {subject} {are} strings; give"
          " numbers"
          " (e.g. dtype float32 in the TFRecord schema, or a parse_fn or"
          " preprocess that converts them), or start the model with layers"
          " that take strings.")
    raise Mismatch(f"{model} strings, but {subject} {are}"
                   f" {spec.dtype.name} values.")
  if not _fits(expected, found):
    raise Mismatch(
        f"{model} inputs of shape {_text((None, *expected))}, but {subject}"
        f" {has} shape {_text(found)}; build the model with"
        f" keras.Input(shape={_text(found)}), or give features of shape"
        f" {_text(expected)}.")


def check_same_features(train_spec, eval_spec) -> None:
  """The eval data's features must be those the model trains on.

  Raises:
    Mismatch: If their names, shapes or dtypes differ.
  """
  train, evaluated = named(train_spec), named(eval_spec)
  if set(train) != set(evaluated):
    names = lambda specs: ", ".join(sorted(specs)) or "one array"
    raise Mismatch(f"the eval data's features ({names(evaluated)}) are not"
                   f" the training data's ({names(train)}).")
  for name, spec in train.items():
    other = evaluated[name]
    if not _fits(_shape(spec), _shape(other)) or (
        (spec.dtype == tf.string) != (other.dtype == tf.string)):
      what = f"feature {name!r}" if name else "features"
      raise Mismatch(
          f"the eval data's {what} are {_text(_shape(other))}"
          f" {other.dtype.name}, but the training data's"
          f" {_text(_shape(spec))} {spec.dtype.name}; give both the same"
          " features.")


def loss_name(loss) -> str | None:
  """Keras's name of a loss (string, function or `Loss`), or None."""
  if isinstance(loss, str):
    name = loss
  else:
    function = getattr(loss, "fn", loss)  # LossFunctionWrapper's function.
    name = getattr(function, "__name__", None)
  if not isinstance(name, str):
    return None
  name = name.lower()
  return _ALIASES.get(name, name)


def named_outputs(outputs, output_names=None) -> dict:
  """{name: output}: "" for one, the output layers' names for a list."""
  if (isinstance(outputs, (list, tuple)) and output_names
      and len(output_names) == len(outputs)):
    return dict(zip(output_names, outputs))
  return named(outputs)


def losses_per_output(loss, outputs: dict) -> dict:
  """{output: loss} from compile()'s loss: one, a list or a dict.

  Args:
    loss: What compile() was given.
    outputs: `named_outputs` of the model.
  """
  if isinstance(loss, dict):
    return {name: loss[name] for name in outputs if name in loss}
  if isinstance(loss, (list, tuple)):
    return dict(zip(outputs, loss)) if len(loss) == len(outputs) else {}
  return {name: loss for name in outputs}


def _pair_labels(outputs: dict, labels: dict, losses: dict,
                 data: str) -> dict:
  """{output: label spec} for every output that has a loss.

  Raises:
    Mismatch: If the outputs and the labels do not correspond.
  """
  if set(outputs) == {""} and set(labels) == {""}:
    return {"": labels[""]}
  if set(outputs) != {""} and set(labels) == {""}:
    raise Mismatch(
        f"the model has {len(outputs)} outputs ({', '.join(outputs)}), but"
        f" {data} has one label array; give one label array per output, as"
        " a dict keyed by the output names.")
  if set(outputs) == {""}:
    raise Mismatch(
        f"the model has one output, but {data}'s labels are"
        f" {', '.join(sorted(labels))}; give one label array, or a model"
        " with one output per label.")
  missing = sorted(set(losses) - set(labels))
  extra = sorted(set(labels) - set(outputs))
  if missing or extra:
    raise Mismatch(
        f"the model's outputs are {', '.join(outputs)}, but {data}'s labels"
        f" are {', '.join(sorted(labels))}; name the labels like the"
        " outputs.")
  return {name: labels[name] for name in losses}


def check_labels(outputs, labels_spec, *, losses: dict, num_classes,
                 data: str, configured: bool = False, metrics=(),
                 output_names=None, origin: str = "compile()'s loss ") -> None:
  """Checks every output against its labels and loss.

  Args:
    outputs: Structure of the model's output shapes (with batch), as the
      model returns them: one, a list or a dict.
    labels_spec: `tf.TensorSpec` structure of one batch's labels.
    losses: {output name: loss} ("" for a single output); see
      `losses_per_output`. Outputs without a loss are not checked.
    num_classes: The source's class count (an int, a dict per output, or
      None): `max + 1` of integer labels.
    data: Names the data in messages.
    configured: Whether the losses are the harness's configured ones
      (they take class indices and one-hot them with the class count).
    metrics: The configured metric names.
    origin: How messages name a loss: "compile()'s loss ", or the
      caller's name of its loss setting followed by "=".
    output_names: The model's `output_names` (a list of outputs is named
      by them, and its labels may be keyed by them).

  Raises:
    Mismatch: One sentence naming the mismatch and the fix.
  """
  outputs = named_outputs(outputs, output_names)
  labels = (dict(zip(outputs, labels_spec))
            if isinstance(labels_spec, (list, tuple))
            and len(labels_spec) == len(outputs) else named(labels_spec))
  pairs = _pair_labels(outputs, labels, losses, data)
  classes = named(num_classes) if isinstance(num_classes, dict) else {
      name: num_classes for name in pairs}
  for name, label in pairs.items():
    if label.dtype == tf.string:
      continue  # Not numbers: not checked here.
    where = f" {name!r}" if name else ""
    loss = losses[name]
    described = (f"{origin}{(name + ':') if name and configured else ''}"
                 f"{loss_name(loss) or loss}")
    _check_output(
        loss_name(loss), _Pair(
            out=tuple(outputs[name][1:]), label=_shape(label),
            is_integer=label.dtype.is_integer or label.dtype == tf.bool,
            classes=classes.get(name) if isinstance(
                classes.get(name), int) else None,
            loss=described, labels=f"{data}'s labels{where}",
            output=f"the model's output{where}"),
        configured=configured, metrics=metrics)


class _Pair:
  """One output and its labels, as the messages name them."""

  def __init__(self, *, out, label, is_integer, classes, loss, labels,
               output):
    self.out, self.label, self.is_integer = out, label, is_integer
    self.out_text, self.label_text = _text((None, *out)), _text((None, *label))
    self.units = out[-1] if out else 1
    self.classes, self.loss, self.labels, self.output = (classes, loss,
                                                         labels, output)
    self.is_index = label in ((), (1,)) or _fits(out[:-1], label) or (
        _fits(out[:-1] + (1,), label))


def _check_output(name, pair: _Pair, *, configured: bool, metrics) -> None:
  if name == SPARSE or (configured and name in CATEGORICAL):
    _check_class_indices(name, pair, configured=configured, metrics=metrics)
  elif name in CATEGORICAL:
    _check_one_hot(pair)
  elif name in BINARY:
    _check_binary(pair, configured=configured)
  elif name in REGRESSION:
    if not (_fits(pair.out, pair.label) or (pair.units == 1 and pair.is_index)
            or _fits(pair.out, pair.label + (1,))):
      raise Mismatch(
          f"{pair.loss} compares each label with one output value, but"
          f" {pair.labels} have shape {pair.label_text} and"
          f" {pair.output} {pair.out_text}; give the model"
          f" {pair.label[-1] if pair.label else 1} output unit(s).")


def _check_class_indices(name, pair: _Pair, *, configured: bool,
                         metrics) -> None:
  if not pair.is_integer:
    if pair.label in ((), (1,)) or pair.classes == 1:
      raise Mismatch(
          f"{pair.loss} needs integer class labels, but {pair.labels} are"
          " float numbers (regression targets); give class indices (e.g."
          " y.astype('int32')), or use a regression loss such as mse.")
    raise Mismatch(
        f"{pair.loss} takes class indices, but {pair.labels} have shape"
        f" {pair.label_text} (one-hot?); give class indices"
        " (y.argmax(axis=-1))"
        + (", or compile the model with categorical_crossentropy."
           if configured else ", or use categorical_crossentropy."))
  if not pair.is_index:
    raise Mismatch(
        f"{pair.loss} takes one class index per output row, but"
        f" {pair.labels} have shape {pair.label_text} and {pair.output}"
        f" {pair.out_text}.")
  classes = pair.classes
  if classes is not None and classes > pair.units:
    raise Mismatch(
        f"{pair.loss} needs one output unit per class, but {pair.labels} go"
        f" up to {classes - 1} ({classes} classes) and {pair.output} has"
        f" {pair.units} unit{'s' if pair.units != 1 else ''}; end the model"
        f" with Dense({classes})"
        + (", or use binary_crossentropy for one sigmoid unit."
           if classes == 2 and pair.units == 1 else
           ", or, if the labels are numbers to predict, a regression loss"
           " such as mse." if pair.units == 1 else "."))
  if not configured or classes is None or classes == pair.units:
    return
  one_hot = ([m for m in metrics if m in _ONE_HOT_METRICS]
             if name == SPARSE else ["the loss"])
  if one_hot:
    raise Mismatch(
        f"{pair.output} has {pair.units} units but {pair.labels} hold"
        f" {classes} classes, and {one_hot[0]} compares them one-hot; end"
        f" the model with Dense({classes}).")


def _check_one_hot(pair: _Pair) -> None:
  if _fits(pair.out, pair.label):
    return
  if pair.is_integer and pair.is_index:
    raise Mismatch(
        f"{pair.loss} needs one-hot labels of width {pair.units}, but"
        f" {pair.labels} are class indices; use"
        " sparse_categorical_crossentropy, or one-hot labels"
        f" (keras.utils.to_categorical(y, {pair.units})).")
  raise Mismatch(
      f"{pair.loss} needs labels of the output's shape, but {pair.labels}"
      f" have shape {pair.label_text} ({pair.label[-1] if pair.label else 1}"
      f" columns) and {pair.output} {pair.out_text} ({pair.units}"
      " units); give the model one unit per one-hot column.")


def _check_binary(pair: _Pair, *, configured: bool) -> None:
  if pair.is_integer and pair.classes is not None and pair.classes > 2:
    raise Mismatch(
        f"{pair.loss} needs labels 0 or 1, but {pair.labels} go up to"
        f" {pair.classes - 1}; use sparse_categorical_crossentropy with"
        f" Dense({pair.classes}) for {pair.classes} classes.")
  fits = (pair.units == 1 and pair.is_index) if configured else (
      _fits(pair.out, pair.label) or (pair.units == 1 and pair.is_index))
  if not fits:
    raise Mismatch(
        f"{pair.loss} needs one output unit per label column, but"
        f" {pair.labels} have shape {pair.label_text} and {pair.output}"
        f" {pair.out_text}.")


def output_shapes(model: keras.Model, features_spec):
  """The model's output shapes (with batch) on a batch of one zero example."""
  zeros = tf.nest.map_structure(
      lambda spec: tf.zeros([1, *[n or 1 for n in _shape(spec)]], spec.dtype),
      features_spec)
  return tf.nest.map_structure(lambda tensor: tensor.shape,
                               model(zeros, training=False))


