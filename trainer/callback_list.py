"""The loop's one list of callbacks: yours, checked, and the built-in ones.

`check_callbacks` refuses, before anything is written, callbacks whose
meaning the harness cannot keep; `build_callbacks` puts your Keras callbacks
(behind one adapter) and `trainer.callbacks.Callback`s in one list with the
built-ins the config asks for (best checkpoint, plateau, early stopping).
"""

from collections.abc import Callable, Sequence
import math
from typing import TYPE_CHECKING

from trainer import callbacks as callbacks_lib
from trainer import checkpointing
from trainer import keras_callbacks
from trainer import layout
from trainer import user_models

if TYPE_CHECKING:
  from trainer.fitting import FitConfig


def check_callbacks(model, callbacks: Sequence, *, config: "FitConfig",
                    has_eval_data: bool) -> None:
  """Refuses, before anything is written, callbacks that would mislead.

  Args:
    model: The built model.
    callbacks: Keras callbacks and `trainer.callbacks.Callback`s.
    config: The run's settings.
    has_eval_data: Whether the run has eval data.

  Raises:
    ValueError: One sentence naming the callback (or option), why and the
      fix.
  """
  train = config.train
  if train.plateau_patience and keras_callbacks.is_schedule(model.optimizer):
    raise ValueError("plateau_patience sets the learning rate, but the"
                     " compiled optimizer's is a schedule; give it a float"
                     " learning_rate or drop plateau_patience.")
  keras_callbacks.check_callbacks(
      [c for c in callbacks if not isinstance(c, callbacks_lib.Callback)],
      model=callback_model(model), steps_per_loop=train.steps_per_loop,
      has_eval_data=has_eval_data and not config.evaluator_task)


def callback_model(model):
  """The model Keras callbacks see: the user's network, its optimizer training."""
  return keras_callbacks.callback_model(model, user_models.network_of(model))


def build_callbacks(model, callbacks: Sequence, config: "FitConfig",
                   checkpointer: checkpointing.Checkpointer,
                   agree: Callable[[bool], bool]) -> list:
  """The loop's one list: the user's callbacks and the built-in ones."""
  train = config.train
  monitor = dict(monitor=train.monitor, mode=train.monitor_mode)
  # First: Keras's fit finalizes before its callbacks' on_train_end.
  built = [callbacks_lib.FinalizeWeights(model=model)]
  built += [c for c in callbacks if isinstance(c, callbacks_lib.Callback)]
  from_keras = [c for c in callbacks
                if not isinstance(c, callbacks_lib.Callback)]
  if from_keras:
    built.append(keras_callbacks.KerasCallbacks(
        from_keras, model=callback_model(model), is_chief=config.is_chief,
        steps_per_epoch=train.eval_every or train.train_steps,
        train_steps=train.train_steps, agree=agree))
  if train.keep_best_checkpoint:
    best = checkpointer.sibling(
        layout.ModelDir(train.model_dir).best_checkpoint)
    built.append(callbacks_lib.BestCheckpoint(checkpointer=best, **monitor))
  if train.plateau_patience:
    built.append(callbacks_lib.ReduceLROnPlateau(
        optimizer=model.optimizer, factor=train.plateau_factor,
        patience=train.plateau_patience, min_lr=train.plateau_min_lr,
        **monitor))
  if train.early_stopping_patience:
    built.append(callbacks_lib.EarlyStopping(
        model=model, patience=train.early_stopping_patience,
        restore_best_weights=train.restore_best_weights, **monitor))
  return built


def divergence_warning(train_data, model,
                        config: "FitConfig") -> callbacks_lib.Callback:
  """Warns when the training loss ends far above its start.

  A classifier the harness compiles with cross-entropy began at most at
  the loss of a uniform guess (ln of the class count; ln 2 per label for
  binary cross-entropy).
  """
  train, chance = config.train, None
  classes = getattr(train_data, "num_classes", None)
  if (not user_models.is_compiled(model) and not train.output_losses
      and config.task != "regression" and classes and classes >= 2):
    if train.loss in ("sparse_categorical_crossentropy",
                      "categorical_crossentropy"):
      chance = math.log(classes)
    elif train.loss == "binary_crossentropy":
      chance = math.log(2)
  return callbacks_lib.DivergenceWarning(chance_loss=chance)
