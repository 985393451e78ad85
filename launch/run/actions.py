"""The actions a run's loop calls: the options' rules and the user's callbacks.

Keras callbacks whose meaning cannot be kept are refused here, before
anything is written; the rest are adapted to the loop's boundaries.
"""

from launch.run import plan as plan_lib
from launch.errors import ConfigError


def check_callbacks(plan: plan_lib.Plan, model, callbacks):
  """Keras callbacks whose meaning cannot be kept are refused up front.

  Returns:
    What the Keras callbacks see as `self.model`.
  """
  from trainer import actions, user_models
  from trainer import callbacks as callbacks_lib
  config = plan.config.train
  view = callbacks_lib.callback_model(model, user_models.network_of(model))
  if config.plateau_patience and callbacks_lib.is_schedule(model.optimizer):
    raise ConfigError("plateau_patience sets the learning rate, but the"
                      " compiled optimizer's is a schedule; give it a float"
                      " learning_rate or drop plateau_patience.")
  try:
    callbacks_lib.check_callbacks(
        [c for c in callbacks if not isinstance(c, actions.Action)],
        model=view, steps_per_loop=config.steps_per_loop,
        has_eval_data=(plan.eval_source is not None
                       and "evaluator" not in plan.cluster.cluster))
  except ValueError as error:
    raise ConfigError(str(error)) from None
  return view


def build_actions(plan: plan_lib.Plan, view, model, checkpointer,
                   callbacks, agree):
  """The flags' early stopping, plateau and best checkpoint + callbacks."""
  from trainer import actions, layout
  from trainer import callbacks as callbacks_lib
  config = plan.config.train
  monitor = dict(monitor=config.monitor, mode=config.monitor_mode)
  # First: Keras's fit finalizes before its callbacks' on_train_end.
  built = [actions.FinalizeWeights(model=model)]
  built += [hook for hook in callbacks if isinstance(hook, actions.Action)]
  keras_callbacks = [c for c in callbacks
                     if not isinstance(c, actions.Action)]
  if keras_callbacks:
    built.append(callbacks_lib.KerasCallbacks(
        keras_callbacks, model=view, is_chief=plan.cluster.is_chief,
        steps_per_epoch=config.eval_every or config.train_steps,
        train_steps=config.train_steps, agree=agree))
  if config.keep_best_checkpoint:
    best = checkpointer.sibling(
        layout.ModelDir(config.model_dir).best_checkpoint)
    built.append(actions.BestCheckpoint(checkpointer=best, **monitor))
  if config.plateau_patience:
    built.append(actions.ReduceLROnPlateau(
        optimizer=model.optimizer, factor=config.plateau_factor,
        patience=config.plateau_patience, min_lr=config.plateau_min_lr,
        **monitor))
  if config.early_stopping_patience:
    built.append(actions.EarlyStopping(
        model=model, patience=config.early_stopping_patience,
        restore_best_weights=config.restore_best_weights, **monitor))
  return built
