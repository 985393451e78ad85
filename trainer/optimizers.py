"""Optimizers by name, created and built inside the strategy's scope."""

import keras

from trainer import config as config_lib
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
  raise ValueError(f"unknown --lr_schedule={config.lr_schedule}.")


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
