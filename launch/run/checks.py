"""The user's data, batch and model checked, before anything is written.

The options were validated one by one (`launch.options.resolve`); here
they meet the data and the model. `plan_run` calls `check_data` (run
length, eval data), `check_batch` (replicas, micro-batches, data size) and,
for a built-in network, `check_outputs` (losses vs labels). `execute`
builds the model through `checked_model_fn` (declared inputs vs the
training features, before Keras calls the model), turns a failed build into
one sentence with Keras's cause (`build_error`), and calls `check_fits` on
the built model: outputs vs labels and losses on the training and the eval
data (see `trainer.compatibility` for the rules). The data's own findings
go here too: the sources' warnings (`log_data_warnings`) and a pipeline's
read or decode error turned into a sentence naming the file
(`raise_if_bad_data`).

TensorFlow and Keras are imported inside the functions that need them:
`plan_run` runs the data checks before it imports TensorFlow.
"""

from typing import TYPE_CHECKING

from absl import logging

from launch.errors import ConfigError, flag

if TYPE_CHECKING:  # plan.py calls these checks: no import at run time.
  from launch.options.resolve import RunConfig
  from launch.run.plan import Plan


def _features(spec) -> str:
  """"(10,) float32", or "a (4,) float32, b (3,) float32"."""
  def one(leaf):
    shape = tuple(leaf.shape[1:])
    return f"{shape} {leaf.dtype.name}".replace("None", "?")
  if isinstance(spec, dict):
    return ", ".join(f"{name} {one(leaf)}" for name, leaf in spec.items())
  return one(spec)


def _model_name(plan: "Plan") -> str:
  """How the user gave the model: model_fn, or --model=package.module:fn."""
  if plan.model_fn is not None and "model" not in plan.given:
    return "model_fn's model"
  return f"{flag('model')}={plan.config.train.model}"


def checked_model_fn(plan: "Plan", strategy, spec, returned: list):
  """`plan.model_fn` that checks its model against the data as it returns it.

  Declared inputs vs the training features, and a compiled model's outputs
  vs the labels: before Keras builds compile()'s loss on the data (which
  fails with a shape error of its own, or not at all).

  Args:
    plan: The run's plan.
    strategy: The strategy (model_fn runs in its scope).
    spec: Specs of one training batch.
    returned: Receives what `model_fn` returned (to tell later whether the
      user's model or the harness's wrapper is being trained).
  """
  import keras  # pylint: disable=import-outside-toplevel
  import trainer  # pylint: disable=import-outside-toplevel
  from trainer import compatibility  # pylint: disable=import-outside-toplevel

  def build():
    model = plan.model_fn()
    returned.append(model)
    if isinstance(model, keras.Model):
      compatibility.check_inputs(model, spec[0], data="the training data")
      if trainer.is_compiled(model):
        _check_fits(plan, model, strategy, spec, returned)
    return model

  return build


def build_error(plan: "Plan", error: Exception,
                features_spec) -> ConfigError:
  """One sentence for a model that could not be built or called."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from trainer import compatibility, error_text  # pylint: disable=import-outside-toplevel
  if isinstance(error, compatibility.Mismatch):
    return ConfigError(f"{_model_name(plan)} does not fit its data: {error}")
  what = ("model_fn" if plan.model_fn is not None and "model" not in
          plan.given else f"{flag('model')}={plan.config.train.model}")
  cause = error_text.describe_call_error(error)
  data = (f" on the training data's features {_features(features_spec)}"
          if plan.model_fn is not None else "")
  strings = [leaf for leaf in tf.nest.flatten(features_spec or ())
             if leaf.dtype == tf.string]
  hint = ("; the features are strings: give numbers (e.g. dtype float32 in"
          " the TFRecord schema), or a model that takes strings"
          if strings else "")
  return ConfigError(f"cannot build {what}{data}: {cause}{hint}.")


def _eval_spec(plan: "Plan", model, strategy):
  """Specs of one eval batch: `(x, y)` or `(x, y, sample_weight)`.

  Of the pipeline the run evaluates on (the plan's sources are
  `trainer.BuiltOnce`: the runner reads this one).
  """
  import trainer  # pylint: disable=import-outside-toplevel
  multi_worker = plan.strategy_kind == "multi_worker"
  dataset_fn, _ = plan.eval_source.eval_dataset_fn(
      global_batch_size=plan.config.data.global_batch_size,
      num_input_pipelines=plan.cluster.num_workers if multi_worker else 1,
      padded=not trainer.is_compiled(model))
  return trainer.batch_spec(strategy, dataset_fn)


def _losses(plan: "Plan", model, network, returned, outputs):
  """({output: loss}, configured?) to check, or (None, _) to skip."""
  import keras  # pylint: disable=import-outside-toplevel
  import trainer  # pylint: disable=import-outside-toplevel
  from trainer import compatibility  # pylint: disable=import-outside-toplevel
  train = plan.config.train
  if trainer.is_compiled(model):
    # A train_step of the user's own decides how labels meet outputs.
    if (getattr(model, "loss", None) is None
        or type(model).train_step is not keras.Model.train_step):
      return None, False
    return compatibility.losses_per_output(
        model.loss, compatibility.named_outputs(
            outputs, getattr(model, "output_names", None))), False
  if any(isinstance(item, trainer.Model) for item in returned):
    return None, True  # The harness's step contract with its own loss_fn.
  return _configured_losses(
      outputs, getattr(network, "output_names", None), train.loss,
      dict(train.output_losses)), True


def _configured_losses(outputs, output_names, loss: str,
                       output_losses: dict) -> dict:
  """{output: loss} of the options' loss(es) for the model's outputs."""
  from trainer import compatibility  # pylint: disable=import-outside-toplevel
  named = compatibility.named_outputs(outputs, output_names)
  if output_losses:
    if not isinstance(outputs, dict) or set(outputs) != set(output_losses):
      raise compatibility.Mismatch(
          f"{flag('loss')} names the outputs {', '.join(output_losses)}, but"
          f" the model's outputs are {', '.join(named) or 'one tensor'}; return"
          f" a dict of outputs keyed like {flag('loss')} from the model.")
    return output_losses
  if set(named) != {""}:
    raise compatibility.Mismatch(
        f"the model has {len(named)} outputs ({', '.join(named)}); return a"
        " dict of outputs and give one loss per output"
        f" ({flag('loss')}=name:loss,name:loss), or compile the model with"
        " its losses.")
  return {"": loss}


def check_fits(plan: "Plan", model, strategy, train_spec,
               returned=()) -> None:
  """Outputs vs labels on the training and eval data.

  A compiled model of model_fn was checked by `checked_model_fn` already.

  Args:
    plan: The run's plan.
    model: The built model (compiled, or the harness's wrapper).
    strategy: Its strategy (the model is called in its scope).
    train_spec: Specs of one training batch.
    returned: What the user's model_fn returned.

  Raises:
    ConfigError: If the model's outputs cannot be trained on the labels.
  """
  import trainer  # pylint: disable=import-outside-toplevel
  from trainer import compatibility  # pylint: disable=import-outside-toplevel
  if plan.model_fn is None:
    try:
      _check_built_in(plan)
    except compatibility.Mismatch as error:
      raise ConfigError(f"{_model_name(plan)} does not fit its data:"
                        f" {error}") from None
  elif not trainer.is_compiled(model):
    _check_fits(plan, model, strategy, train_spec, returned)


def _check_built_in(plan: "Plan") -> None:
  """A built-in network is made for the training data: eval data must match.

  (Its output is sized by the training data's classes, its input by the
  training features, so only the eval data can differ.)
  """
  from trainer import compatibility  # pylint: disable=import-outside-toplevel
  if plan.eval_source is None:
    return
  train, evaluated = plan.train_source, plan.eval_source
  if (evaluated.input_shape is not None
      and evaluated.input_shape != train.input_shape):
    raise compatibility.Mismatch(
        f"the eval data's features are {evaluated.input_shape}, but the"
        f" training data's {train.input_shape}; give both the same"
        " features.")
  trained, classes = train.num_classes, evaluated.num_classes
  if (isinstance(trained, int) and isinstance(classes, int)
      and classes > trained > 1):
    raise compatibility.Mismatch(
        f"the eval data's labels go up to {classes - 1}, but the training"
        f" data's only to {trained - 1}, which sized the network's output;"
        " give training data that holds every class.")


def _check_fits(plan: "Plan", model, strategy, train_spec,
                returned) -> None:
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  import trainer  # pylint: disable=import-outside-toplevel
  from trainer import compatibility  # pylint: disable=import-outside-toplevel
  network = (model if trainer.is_compiled(model)
             else trainer.network_of(model))
  try:
    with strategy.scope():
      outputs = compatibility.output_shapes(network, train_spec[0])
  except (ValueError, TypeError, tf.errors.OpError):
    # E.g. a fixed batch size: Keras's own build says what is wrong.
    return
  train = plan.config.train
  try:
    losses, configured = _losses(plan, model, network, returned, outputs)
    if losses is None:
      return
    checks = [("the training data", train_spec, plan.train_source)]
    if plan.eval_source is not None:
      checks.append(("the eval data", _eval_spec(plan, model, strategy),
                     plan.eval_source))
    for data, spec, source in checks:
      if data == "the eval data":
        compatibility.check_same_features(train_spec[0], spec[0])
      compatibility.check_labels(
          outputs, spec[1], losses=losses, num_classes=source.num_classes,
          data=data, configured=configured,
          metrics=train.metrics if configured else (),
          output_names=getattr(network, "output_names", None),
          origin=f"{flag('loss')}=" if configured else "compile()'s loss ")
  except compatibility.Mismatch as error:
    raise ConfigError(f"{_model_name(plan)} does not fit its data:"
                      f" {error}") from None


def log_data_warnings(plan: "Plan") -> None:
  """The sources' warnings (a class a split left out, files skipped), once."""
  said = set()
  for source in (plan.train_source, plan.eval_source):
    for warning in getattr(source, "warnings", ()):
      if warning not in said:
        said.add(warning)
        logging.warning("%s", warning)


def raise_if_bad_data(plan: "Plan", error: Exception) -> None:
  """An input pipeline's read or decode error, as a sentence naming the file.

  Raises:
    DataError: If a source finds the data behind `error` (e.g. an image
      file that does not decode).
  """
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from datasets.errors import DataError  # pylint: disable=import-outside-toplevel
  if not isinstance(error, (tf.errors.InvalidArgumentError,
                            tf.errors.NotFoundError)):
    return
  for source in (plan.train_source, plan.eval_source):
    explain = getattr(source, "explain_failure", None)
    sentence = explain(error) if explain is not None else None
    if sentence:
      raise DataError(sentence) from None


def check_data(config: "RunConfig", train, eval_data) -> None:
  """The run's length and mode against the data."""
  if config.epochs is not None and not train.num_examples:
    raise ConfigError(f"{flag('epochs')} needs data of known size, but"
                      f" {train.name}"
                      " does not say how many examples it has; set"
                      f" {flag('train_steps')} instead.")
  if config.mode == "evaluate" and eval_data is None:
    raise ConfigError(f"{flag('mode')}=evaluate needs eval data.")


def check_batch(config: "RunConfig", source, replicas: int) -> None:
  """Checks the batch against the replicas and the data."""
  batch = config.data.global_batch_size
  if batch % replicas:
    raise ConfigError(f"{flag('global_batch_size')}={batch} does not divide"
                      " over the"
                      f" {replicas} replicas; use a multiple of {replicas}.")
  micro = config.train.accumulate_steps
  if (batch // replicas) % micro:
    raise ConfigError(f"the per-replica batch ({batch // replicas}) does not"
                      f" split into {flag('accumulate_steps')}={micro}"
                      " micro-batches.")
  if source.num_examples and batch // replicas > source.num_examples:
    raise ConfigError(f"the per-replica batch ({batch // replicas}) is larger"
                      f" than {source.name}'s {source.num_examples}"
                      " training examples.")


def check_outputs(train, source) -> None:
  """The configured losses must match the data's labels (one per output)."""
  classes = source.num_classes
  if train.output_losses:
    outputs = {name for name, _ in train.output_losses}
    if not isinstance(classes, dict) or set(classes) != outputs:
      labels = (", ".join(sorted(classes)) if isinstance(classes, dict)
                else "one array")
      raise ConfigError(
          f"{flag('loss')} names the outputs"
          f" {', '.join(sorted(outputs))}, but"
          f" {source.name}'s labels are {labels}.")
    losses = dict(train.output_losses)
  elif isinstance(classes, dict):
    raise ConfigError(f"{source.name} has the outputs"
                      f" {', '.join(sorted(classes))}; give one loss per"
                      f" output, e.g. {flag('loss')}=name:loss,name:loss.")
  else:
    losses, classes = {"": train.loss}, {"": classes}
  for name, loss in losses.items():
    if loss == "binary_crossentropy" and classes[name] != 2:
      raise ConfigError(f"binary_crossentropy needs 2 classes, but"
                        f" {source.name}{' ' + name if name else ''} has"
                        f" {classes[name]}.")
