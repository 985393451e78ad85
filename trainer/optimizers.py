"""Optimizers by name, created and built inside the strategy's scope.

`prepare_for_replicas` makes any Keras optimizer safe under several
replicas: a LossScaleOptimizer's overflow decision is agreed by all of them
(Keras takes replica 0's, keras-team/keras#18666), and clipping takes the
norm of the all-reduced gradient with no second all-reduce.
"""

import contextlib

import keras
import tensorflow as tf

from trainer import config as config_lib
from trainer import private_apis
from trainer.config import OPTIMIZER_NAMES


def build_learning_rate(config: config_lib.TrainConfig):
  """The learning rate: a float, or a Keras schedule of the step.

  Schedules count optimizer updates (`optimizer.iterations`), which are
  restored from checkpoints, so a resumed run continues the curve.

  Raises:
    ValueError: If the schedule is unknown.
  """
  if config.lr_schedule == "constant":
    return config.learning_rate
  if config.lr_schedule == "warmup_cosine":
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0,
        decay_steps=max(1, config.train_steps - config.warmup_steps),
        warmup_target=config.learning_rate, warmup_steps=config.warmup_steps)
  if config.lr_schedule == "step_decay":
    return keras.optimizers.schedules.ExponentialDecay(
        config.learning_rate, decay_steps=config.decay_steps,
        decay_rate=config.decay_rate, staircase=True)
  raise ValueError(f"unknown lr_schedule {config.lr_schedule!r}.")


def build_optimizer(name: str, learning_rate, *, momentum: float = 0.9,
                    weight_decay: float = 0.004) -> keras.optimizers.Optimizer:
  """Returns a Keras optimizer; call it inside `strategy.scope()`.

  Args:
    name: One of `OPTIMIZER_NAMES`.
    learning_rate: A float or a `keras.optimizers.schedules` schedule.
    momentum: Momentum of `sgd` (heavy ball).
    weight_decay: Decoupled weight decay of `adamw`.

  Raises:
    ValueError: If `name` is unknown.
  """
  if name == "adam":
    return keras.optimizers.Adam(learning_rate)
  if name == "adamw":
    return keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay)
  if name == "sgd":
    return keras.optimizers.SGD(learning_rate, momentum=momentum)
  if name == "rmsprop":
    return keras.optimizers.RMSprop(learning_rate)
  raise ValueError(f"unknown optimizer {name!r}; choose one of"
                   f" {', '.join(OPTIMIZER_NAMES)}.")


def prepare_for_replicas(optimizer: keras.optimizers.Optimizer, *,
                         clip_norm: float = 0.0) -> None:
  """Makes `optimizer` agree on overflow and clip the global gradient.

  Call it once the optimizer exists (calling it again is harmless); it
  changes this instance only, for every caller of its `apply_gradients`
  (the harness's step, Keras's default `train_step`, a user's own).

  * A `LossScaleOptimizer` skips a step when its gradients are not finite,
    but under tf.distribute Keras looks at replica 0's local gradients only
    (or, under XLA on GPUs, each replica at its own, so the replicas take
    different branches around the all-reduce and hang). Here every replica
    first all-reduces one number, "my gradients are not finite", and if any
    is, all of them pass NaN gradients on: all skip the step and halve the
    loss scale, as Keras does on one device.
  * `clip_norm` > 0 clips the gradient summed over the replicas (the global
    batch's) to that global norm, right after the one all-reduce Keras's
    optimizer does; under loss scaling the norm is of unscaled gradients.

  Args:
    optimizer: A Keras optimizer, built or not.
    clip_norm: The largest global norm of the gradient; 0: no clipping.
  """
  is_loss_scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
  inner = optimizer.inner_optimizer if is_loss_scaled else optimizer
  private_apis.clip_after_all_reduce(inner, clip_norm)
  if is_loss_scaled and "apply" not in vars(optimizer):
    apply = optimizer.apply  # The class's, bound.

    def apply_agreed(grads, trainable_variables=None):
      return apply(agree_on_finite(list(grads)), trainable_variables)

    optimizer.apply = apply_agreed


def agree_on_finite(gradients: list) -> list:
  """The local gradients, or all NaN on every replica if any is not finite.

  Call it in a replica context; it costs one all-reduce of a scalar (none on
  one replica). None gradients stay None.
  """
  context = tf.distribute.get_replica_context()
  if context is None or context.num_replicas_in_sync == 1:
    return gradients
  values = [grad.values if isinstance(grad, tf.IndexedSlices) else grad
            for grad in gradients if grad is not None]
  if not values:
    return gradients
  is_finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(value))
                             for value in values])
  non_finite_replicas = context.all_reduce(
      tf.distribute.ReduceOp.SUM, 1.0 - tf.cast(is_finite, tf.float32))
  factor = tf.where(non_finite_replicas > 0, float("nan"), 1.0)

  def scaled(grad):
    if grad is None:
      return None
    if isinstance(grad, tf.IndexedSlices):
      return tf.IndexedSlices(grad.values * tf.cast(factor, grad.dtype),
                              grad.indices, grad.dense_shape)
    return grad * tf.cast(factor, grad.dtype)

  return [scaled(grad) for grad in gradients]


def inner_optimizer(optimizer: keras.optimizers.Optimizer
                    ) -> keras.optimizers.Optimizer:
  """The optimizer that owns the learning rate (inside a loss scaler)."""
  return getattr(optimizer, "inner_optimizer", optimizer)


def has_rate_variable(optimizer: keras.optimizers.Optimizer) -> bool:
  """Whether the learning rate is a variable (a float), not a schedule."""
  return isinstance(inner_optimizer(optimizer)._learning_rate,  # pylint: disable=protected-access
                    keras.Variable)


def set_learning_rate(optimizer: keras.optimizers.Optimizer,
                      learning_rate) -> None:
  """Puts `learning_rate` in effect, as a fresh optimizer would have it.

  A float on an optimizer whose rate is a variable is assigned: it takes
  effect at once, also in steps already traced. Switching between a float
  and a schedule replaces the rate (and tracks or untracks its variable
  the way Keras's constructor would, so the checkpoint layout is that of a
  fresh optimizer); it takes effect in steps traced afterwards.

  Args:
    optimizer: A built Keras optimizer (or a `LossScaleOptimizer`).
    learning_rate: A float, or a `keras.optimizers.schedules` schedule.
  """
  inner = inner_optimizer(optimizer)
  # pylint: disable=protected-access
  if isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule):
    if has_rate_variable(inner):
      private_apis.track_rate_variable(inner, None)
    private_apis.set_rate_attribute(inner, learning_rate)
    return
  if has_rate_variable(inner):
    inner._learning_rate.assign(float(learning_rate))
    return
  with inner._distribution_strategy.scope():
    variable = keras.Variable(
        float(learning_rate), name="learning_rate", dtype=keras.config.floatx(),
        trainable=False, aggregation="only_first_replica")
  private_apis.set_rate_attribute(inner, variable)
  private_apis.track_rate_variable(inner, variable)
  # pylint: enable=protected-access


@contextlib.contextmanager
def rate_layout_of(optimizer, path: str):
  """Restores inside it match checkpoint `path`'s learning-rate layout.

  A checkpoint written with a float rate holds the rate's variable among
  the optimizer's (positional) variables, one written with a schedule does
  not; inside this context the optimizer has the checkpoint's layout, and
  afterwards the configured rate again (a schedule; or a float, restored
  with a plateau's reductions unless `use_configured_rate()` is called).

  Args:
    optimizer: The checkpoint's optimizer (None: nothing to do).
    path: The checkpoint about to be restored.

  Yields:
    `use_configured_rate()`: call it after the restore when the rate's
    settings changed since the checkpoint: the configured rate then
    replaces the restored one.
  """
  if optimizer is None:
    yield lambda: None
    return
  inner = inner_optimizer(optimizer)
  configured = inner._learning_rate  # pylint: disable=protected-access
  value = float(configured.numpy()) if has_rate_variable(inner) else None
  where = (("optimizer", "inner_optimizer") if inner is not optimizer
           else ("optimizer",))
  try:
    in_checkpoint, count = private_apis.checkpoint_optimizer_layout(
        path, where)
  except Exception:  # pylint: disable=broad-except
    # Unreadable: the restore will say.
    in_checkpoint, count = value is not None, len(inner.variables)
  switched = in_checkpoint != (value is not None)
  if switched:
    set_learning_rate(optimizer, 0.0 if in_checkpoint else
                      keras.optimizers.schedules.ExponentialDecay(0.0, 1, 1.0))
  # SGD without momentum has no slots: resumed with momentum, they start
  # at zero, as in a fresh optimizer.
  hidden = (inner.variables[count:] if isinstance(inner, keras.optimizers.SGD)
            and count == 1 + in_checkpoint < len(inner.variables) else [])
  if hidden:
    private_apis.set_tracked_variables(inner, inner.variables[:count])
    momentums = private_apis.hide_attribute(inner, "momentums")
  asked = []
  try:
    yield lambda: asked.append(True)
  finally:
    if hidden:
      private_apis.set_tracked_variables(inner, inner.variables + hidden)
      private_apis.show_attribute(inner, "momentums", momentums)
    if switched:
      set_learning_rate(optimizer, configured if value is None else value)
    elif asked and value is not None:
      inner._learning_rate.assign(value)  # pylint: disable=protected-access


def apply_hyperparameters(model, config: config_lib.TrainConfig) -> None:
  """Puts the configured optimizer settings in effect on a built model.

  For a model whose optimizer the harness built (`attach_optimizer`):
  after restoring a checkpoint written under other settings, the restored
  learning-rate variable would otherwise win over `config`. Everything
  else the config sets (momentum, weight decay, clipping, accumulation,
  dropout, l2) is read from the objects built from `config`, never from a
  checkpoint; this sets them again so that the function is also right on a
  model whose settings were changed in memory.

  Args:
    model: A `trainer.model.Model` with its optimizer built.
    config: The settings to put in effect.
  """
  optimizer = model.optimizer
  inner = inner_optimizer(optimizer)
  set_learning_rate(optimizer, build_learning_rate(config))
  if hasattr(inner, "momentum") and config.optimizer == "sgd":
    inner.momentum = config.momentum
  if hasattr(inner, "weight_decay") and config.optimizer == "adamw":
    inner.weight_decay = config.weight_decay
  if hasattr(model, "clip_norm"):
    model.clip_norm = config.clip_norm
    prepare_for_replicas(optimizer, clip_norm=config.clip_norm)
  if hasattr(model, "accumulate_steps"):
    model.accumulate_steps = config.accumulate_steps
