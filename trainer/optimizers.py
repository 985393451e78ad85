"""Optimizers by name, created and built inside the strategy's scope."""

import keras

from trainer.config import OPTIMIZER_NAMES


def build_optimizer(name: str, learning_rate: float, *,
                    momentum: float = 0.9) -> keras.optimizers.Optimizer:
  """Returns a Keras optimizer; call it inside `strategy.scope()`.

  Args:
    name: One of `OPTIMIZER_NAMES`.
    learning_rate: The learning rate.
    momentum: Momentum of `sgd` (heavy ball).

  Raises:
    ValueError: If `name` is unknown.
  """
  if name == "adam":
    return keras.optimizers.Adam(learning_rate)
  if name == "sgd":
    return keras.optimizers.SGD(learning_rate, momentum=momentum)
  if name == "rmsprop":
    return keras.optimizers.RMSprop(learning_rate)
  raise ValueError(f"unknown optimizer {name!r}; choose one of"
                   f" {', '.join(OPTIMIZER_NAMES)}.")
