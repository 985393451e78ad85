"""Resuming a model_dir: is the earlier run the same experiment?

`config.json` records the settings of the run that wrote a model_dir (and,
for a user's model, a fingerprint of the model). A rerun that differs in
anything that changes the result is refused with the differences named,
instead of silently restoring the old checkpoint under new settings.
Only a checkpoint is protected: a run that saved none (it failed before
its first save) leaves nothing to resume, so a corrected rerun in the same
model_dir starts from step 0 and its config.json replaces the old one.
"""

import glob
import json
import math
import os
import re

from absl import logging

from launch.errors import ConfigError, flag
from launch.options import definitions as options_lib
from launch.options.config import RunConfig
from trainer import layout

_MISSING = object()


def _lookup(record: dict, path: str):
  for part in path.split("."):
    if not isinstance(record, dict) or part not in record:
      return _MISSING
    record = record[part]
  return record


def result_settings() -> tuple[options_lib.Option, ...]:
  """The options that change what a checkpoint's numbers mean, or what
  training from it gives (`Option.changes_result`): resuming under other
  values would restore garbage, fail obscurely, or silently mix two runs.
  Run length, logging and distribution settings may change."""
  return tuple(option for option in options_lib.OPTIONS
               if option.changes_result)


def holds_checkpoint(model_dir: str) -> bool:
  """Whether `model_dir` holds a checkpoint (the last or the best one).

  Read from the files (as `trainer.checkpointing` does): a lost state
  file does not hide them.
  """
  paths = layout.ModelDir(model_dir)
  return any(glob.glob(os.path.join(directory, "ckpt-*.index"))
             for directory in (paths.checkpoints, paths.best_checkpoint))


def _refuse_or_replace(config: RunConfig, message: str, *,
                       say: bool = True) -> None:
  """Refuses a rerun that differs from a run with checkpoints.

  Args:
    config: The rerun's settings.
    message: The refusal.
    say: Log that the earlier run's config.json is replaced.

  Raises:
    ConfigError: `message`, if model_dir holds a checkpoint.
  """
  if holds_checkpoint(config.train.model_dir):
    raise ConfigError(message)
  if say:
    logging.info(
        "%s holds the config.json of an earlier run with other settings"
        " that saved no checkpoint: nothing to resume, so training starts"
        " at step 0 and its config.json replaces the old one.",
        config.train.model_dir)


def check_resume_compatible(config: RunConfig) -> None:
  """Compares with `model_dir/config.json` of an earlier run, if any.

  Raises:
    ConfigError: If the earlier run differs in a setting that changes the
      meaning of its checkpoints or the result, or its config.json is
      unreadable.
  """
  path = layout.ModelDir(config.train.model_dir).config
  if not os.path.exists(path):
    return
  try:
    with open(path, encoding="utf-8") as stream:
      saved = json.load(stream)
    if not isinstance(saved, dict):
      raise ValueError("not an object")
  except (OSError, ValueError) as error:
    _refuse_or_replace(config, f"{path} is unreadable"
                       f" ({type(error).__name__}); pass"
                       f" {flag('allow_config_change')} to resume anyway.")
    return
  current = json.loads(config.to_json())
  changes = []
  for option in result_settings():
    path = options_lib.config_path(option)
    before, now = _lookup(saved, path), _lookup(current, path)
    if before is not _MISSING and before != now:
      changes.append(f"{flag(option.name)}={before!r} -> {now!r}")
  if changes:
    _refuse_or_replace(
        config, f"{flag('model_dir')}={config.train.model_dir} holds a run with"
        f" other settings ({'; '.join(changes)}); use a new"
        f" {flag('model_dir')}, or"
        f" {flag('allow_config_change')} to resume anyway.")


def model_fingerprint(model) -> dict:
  """What a checkpoint of `model` means beyond the config's names.

  For a user's model the options do not say which network, optimizer and
  loss made the checkpoint; this records them so a rerun with another
  model or compile() is refused like a changed flag.
  """
  optimizer = getattr(model, "optimizer", None)
  inner = getattr(optimizer, "inner_optimizer", optimizer)
  settings = {}
  if inner is not None:
    for name, value in sorted(inner.get_config().items()):
      if name != "name" and isinstance(value, (int, float, str, bool)):
        settings[name] = value
  return {"class": type(model).__name__,
          "parameters": int(sum(int(math.prod(v.shape))
                                for v in model.trainable_variables)),
          "optimizer": type(inner).__name__, "optimizer_config": settings,
          # Without object addresses, which differ from process to process.
          "loss": re.sub(r" at 0x[0-9a-f]+", "",
                         repr(getattr(model, "loss", None)))[:200]}


def check_fingerprint(config: RunConfig, fingerprint: dict) -> None:
  """Like `check_resume_compatible`, for the model itself."""
  path = layout.ModelDir(config.train.model_dir).config
  try:
    with open(path, encoding="utf-8") as stream:
      saved = json.load(stream).get("model_fingerprint")
  except FileNotFoundError:
    return
  except (OSError, ValueError, AttributeError) as error:
    _refuse_or_replace(config, f"{path} is unreadable"
                       f" ({type(error).__name__}); pass"
                       f" {flag('allow_config_change')} to resume anyway.")
    return
  if saved is None or saved == fingerprint:
    return
  changes = [f"{key} {saved.get(key)!r} -> {fingerprint.get(key)!r}"
             for key in sorted(set(saved) | set(fingerprint))
             if saved.get(key) != fingerprint.get(key)]
  _refuse_or_replace(
      config, f"{flag('model_dir')}={config.train.model_dir} holds a run of"
              " another"
      f" model ({'; '.join(changes)[:300]}); use a new {flag('model_dir')}, or"
      f" {flag('allow_config_change')} to resume anyway.",
      say=False)  # Said by check_resume_compatible (or not worth a line).


def write_config(config: RunConfig, fingerprint: dict | None = None) -> str:
  """Writes `model_dir/config.json` atomically; returns its path."""
  path = layout.ModelDir(config.train.model_dir).config
  staging = path + ".tmp"
  record = json.loads(config.to_json())
  if fingerprint is not None:
    record["model_fingerprint"] = fingerprint
  with open(staging, "w", encoding="utf-8") as stream:
    stream.write(json.dumps(record, indent=2, sort_keys=True) + "\n")
  os.replace(staging, path)
  return path
