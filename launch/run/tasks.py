"""The run's task (classification or regression) and its loss and metrics.

The task is never guessed silently: `--task` wins; else `--loss=mse` means
regression; else the training data says it (`Source.task`, which
`datasets.labels` decides or refuses as in doubt); a source that does not
say is classification, unless it has a single output unit's labels.
Regression gets the loss mse and the metrics mae and mse unless the options
name them; classification metrics with regression (and the reverse) are
refused in one sentence.
"""

import dataclasses

from datasets import labels
from launch.options import resolve as config_lib
from launch.errors import ConfigError, flag
from trainer.config import REGRESSION_METRICS

CLASSIFICATION_METRICS = ("accuracy",)


def data_task(config: config_lib.RunConfig) -> str:
  """The task to read --train_data with: --task, or regression for mse."""
  if (config.task == "auto" and not config.train.output_losses
      and config.train.loss == "mse"):
    return "regression"
  return config.task


def _source_task(source) -> str:
  """What the data says; a source that does not say: by its outputs."""
  task = getattr(source, "task", None)
  if task is not None:
    return task
  return "regression" if source.num_classes == 1 else "classification"


def _check_agrees(task: str, source, config: config_lib.RunConfig) -> None:
  """An explicit --task or --loss=mse must fit what the data holds."""
  said = getattr(source, "task", None)
  if said is None or said == task:
    return
  names = getattr(source, "class_names", None)
  if names:
    what = (f"{flag('loss')}=mse" if config.task == "auto"
            else f"{flag('task')}={task}")
    raise ConfigError(f"{source.name}'s labels are the classes"
                      f" {labels.format_names(names)}, so {what} does not"
                      " apply; drop it.")
  if config.task == "auto":  # --loss=mse on integer classes: Keras's meaning.
    return
  raise ConfigError(f"{flag('task')}={task}, but {source.name} holds {said}"
                    " labels;"
                    f" read the data with task={task} (datasets.from_csv or"
                    f" from_arrays), or drop {flag('task')}.")


def resolve(config: config_lib.RunConfig, source,
            given=frozenset()) -> config_lib.RunConfig:
  """`config` with its task, loss and metrics resolved for `source`.

  Args:
    config: The validated config (`task` may be "auto", `train.metrics`
      empty for the task's defaults).
    source: The training Source.
    given: Names of the options the caller set.

  Raises:
    ConfigError: If the options and the data disagree on the task.
  """
  train = config.train
  if train.output_losses or isinstance(source.num_classes, dict):
    if config.task != "auto":
      raise ConfigError(f"{flag('task')}={config.task} applies to one label;"
                        " with several outputs give a loss per output, e.g."
                        f" {flag('loss')}=name:mse,"
                        "name:sparse_categorical_crossentropy.")
    return dataclasses.replace(config, train=dataclasses.replace(
        train, metrics=train.metrics or CLASSIFICATION_METRICS))
  task = data_task(config)
  if task == "auto":
    task = _source_task(source)
  _check_agrees(task, source, config)
  loss, metrics = train.loss, train.metrics
  if task == "regression":
    if "loss" in given and loss != "mse":
      raise ConfigError(f"{flag('loss')}={loss} is a classification loss, but"
                        f" the labels of {source.name} are regression targets;"
                        f" use {flag('loss')}=mse, or"
                        f" {flag('task')}=classification if they"
                        " are classes.")
    loss, metrics = "mse", metrics or REGRESSION_METRICS
    wrong = [name for name in metrics if name not in REGRESSION_METRICS]
    if wrong:
      raise ConfigError(f"{flag('metrics')}={wrong[0]} is a classification"
                        " metric, but the task is regression; use"
                        f" {flag('metrics')}=mae,mse"
                        f" (or {flag('task')}=classification if the labels are"
                        " classes).")
  else:
    if loss == "mse":
      raise ConfigError(f"{flag('loss')}=mse is a regression loss, but"
                        f" {flag('task')}=classification; use a classification"
                        " loss such as sparse_categorical_crossentropy.")
    metrics = metrics or CLASSIFICATION_METRICS
    if "mae" in metrics:
      raise ConfigError(f"{flag('metrics')}=mae is a regression metric, but the"
                        f" labels of {source.name} are classes; use accuracy"
                        f" (or {flag('task')}=regression if they are"
                        " quantities).")
  config = dataclasses.replace(config, task=task, train=dataclasses.replace(
      train, loss=loss, metrics=tuple(metrics)))
  config_lib.validate(config)  # --monitor against the resolved metrics.
  return config
