"""A user's `model_fn()`: a Keras model, compiled or not, made trainable.

* Compiled (`model.compile(optimizer, loss, metrics, ...)`): the model's own
  `train_step`/`test_step` run (Keras's default or the user's override in
  Keras's idiom: `self.compute_loss`, `self.optimizer.apply_gradients`,
  `self.compute_metrics`). Keras's default step divides the loss by the
  replica count itself, so gradients summed over replicas are those of the
  global batch; a `trainer.loss_tracking.LossWatch` (the runner's) makes a
  custom step log the global batch's loss too. Its optimizer is prepared so
  that, under mixed_float16, an overflow on any replica skips the step on
  all of them.
* A `trainer.model.Model` (the harness's step contract) gets the
  configured optimizer if it has none.
* Any other `keras.Model` is the network of a `trainer.model.Model` with
  the configured loss, metrics and optimizer.
"""

from collections.abc import Callable

import keras
import tensorflow as tf

from trainer import build
from trainer import config as config_lib
from trainer import model as model_lib
from trainer import optimizers
from trainer import private_apis


def is_compiled(model: keras.Model) -> bool:
  """Whether `model` brings its own optimizer, loss and metrics."""
  return (not isinstance(model, model_lib.Model)
          and getattr(model, "compiled", False))


def _zeros(element_spec):
  """A batch of one zero example per tensor of `element_spec`."""
  return tf.nest.map_structure(
      lambda spec: tf.zeros([1, *spec.shape[1:]], spec.dtype), element_spec)


def _check_in_scope(model: keras.Model, strategy) -> None:
  outside = [variable.path for variable in model.variables
             if not strategy.extended.variable_created_in_scope(
                 getattr(variable, "value", variable))]
  if outside:
    raise ValueError(
        f"the model's variables (e.g. {outside[0]}) were created outside the"
        " distribution strategy; create the model inside model_fn, not"
        " before calling fit.")


def build_user_model(model_fn: Callable[[], keras.Model],
                     strategy: tf.distribute.Strategy, *,
                     config: config_lib.TrainConfig, num_classes,
                     element_spec) -> keras.Model:
  """Calls `model_fn` in the strategy's scope and readies the result.

  Args:
    model_fn: Takes no arguments, returns a `keras.Model`.
    strategy: The strategy whose scope owns the variables.
    config: Optimizer, loss and metrics for an uncompiled model; the dtype
      policy for all.
    num_classes: Of the labels (for the configured loss and metrics).
    element_spec: `(x, y)` specs of one per-replica training batch.

  Returns:
    A model whose `train_step`/`test_step` the runner can drive, with its
    optimizer built.

  Raises:
    ValueError: If `model_fn` returns something else, or built its model
      outside the strategy.
  """
  previous = keras.config.dtype_policy()
  keras.config.set_dtype_policy(config.mixed_precision)
  try:
    with strategy.scope():
      model = model_fn()
  finally:
    keras.config.set_dtype_policy(previous)
  if not isinstance(model, keras.Model):
    raise ValueError(f"model_fn returned {type(model).__name__}, not a"
                     " keras.Model.")
  _check_in_scope(model, strategy)
  with strategy.scope():
    if is_compiled(model):
      if model.optimizer is None:
        raise ValueError("the model was compiled without an optimizer.")
      private_apis.build_compiled_model(model, element_spec)
      model.optimizer.build(model.trainable_variables)
      # Keras's default step then skips an overflow on all replicas alike.
      optimizers.prepare_for_replicas(model.optimizer)
      return model
    if not isinstance(model, model_lib.Model):
      model = model_lib.Model(
          model, loss=build.configured_loss(config, num_classes),
          metrics=build.configured_metrics(config, num_classes),
          clip_norm=config.clip_norm,
          accumulate_steps=config.accumulate_steps)
    model(_zeros(element_spec[0]), training=False)
    _check_in_scope(model, strategy)
    build.attach_optimizer(model, config)
  return model


def network_of(model: keras.Model) -> keras.Model:
  """What gets exported: the wrapped network, or the model itself."""
  return getattr(model, "network", None) or model
