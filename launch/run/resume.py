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


# Result-changing options that cannot change on resume, even when allowed,
# and why: the checkpoint could not mean the same objects under them.
FIXED_ON_RESUME = {
    "model": "a checkpoint holds the weights of one network",
    "optimizer": "a checkpoint holds the state (slots) of one optimizer",
    "mixed_precision": "the loss scaler's state exists under mixed_float16"
                       " only and the variables' dtypes follow the policy",
}

# The options whose change puts the configured learning rate in effect
# (else a float rate is restored, with a plateau's reductions).
RATE_OPTIONS = ("learning_rate", "lr_schedule", "warmup_steps",
                "decay_steps", "decay_rate")


def read_config(model_dir: str) -> dict | None:
  """`model_dir/config.json` as written, None if absent.

  Raises:
    OSError, ValueError: It is unreadable or not a JSON object.
  """
  path = layout.ModelDir(model_dir).config
  if not os.path.exists(path):
    return None
  with open(path, encoding="utf-8") as stream:
    saved = json.load(stream)
  if not isinstance(saved, dict):
    raise ValueError("not an object")
  return saved


def changed_settings(config: RunConfig) -> dict[str, list]:
  """{option name: [before, now]} of the result-changing options that
  differ from model_dir's config.json (the latest settings), in the order
  of the options; empty without a readable config.json."""
  try:
    saved = read_config(config.train.model_dir)
  except (OSError, ValueError):
    return {}
  if saved is None:
    return {}
  current = json.loads(config.to_json())
  changes = {}
  for option in result_settings():
    path = options_lib.config_path(option)
    before, now = _lookup(saved, path), _lookup(current, path)
    if before is not _MISSING and before != now:
      changes[option.name] = [before, now]
  return changes


def describe_changes(changes: dict[str, list]) -> str:
  """"--a=1 -> 2; --b='x' -> 'y'" (options marked with `flag`, by
  name)."""
  return "; ".join(f"{flag(name)}={before!r} -> {now!r}"
                   for name, (before, now) in sorted(changes.items())
                   if name != "model_fingerprint")


def check_resume_compatible(config: RunConfig) -> None:
  """Compares with `model_dir/config.json` of an earlier run, if any.

  With `allow_config_change` the changed settings take effect from the
  resumed step, except those in `FIXED_ON_RESUME`.

  Raises:
    ConfigError: If the earlier run differs in a setting that changes the
      meaning of its checkpoints or the result (one that cannot change at
      all, even when allowed), or its config.json is unreadable.
  """
  path = layout.ModelDir(config.train.model_dir).config
  try:
    read_config(config.train.model_dir)
  except (OSError, ValueError) as error:
    if not config.allow_config_change:
      _refuse_or_replace(config, f"{path} is unreadable"
                         f" ({type(error).__name__}); pass"
                         f" {flag('allow_config_change')} to resume anyway.")
    return
  changes = changed_settings(config)
  if not changes:
    return
  if config.allow_config_change:
    for name, reason in FIXED_ON_RESUME.items():
      if name in changes and holds_checkpoint(config.train.model_dir):
        before, now = changes[name]
        raise ConfigError(
            f"{flag('model_dir')}={config.train.model_dir} holds checkpoints"
            f" of {flag(name)}={before!r}, which cannot change to {now!r} on"
            f" resume ({reason}), even with {flag('allow_config_change')};"
            f" use a new {flag('model_dir')} (with"
            f" {flag('init_checkpoint')}={config.train.model_dir} to start"
            " from its weights).", option=name)
    return
  _refuse_or_replace(
      config, f"{flag('model_dir')}={config.train.model_dir} holds a run with"
      f" other settings ({describe_changes(changes)}); use a new"
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


def write_config(config: RunConfig, fingerprint: dict | None = None, *,
                 changes: dict[str, list] | None = None,
                 step: int = 0) -> str:
  """Writes `model_dir/config.json` atomically; returns its path.

  The record holds the latest settings (what the next resume is compared
  with) and "changes": the history of settings changed on resume, each
  {"step": the step it took effect, option: [before, now], ...}.

  Args:
    config: The run's settings.
    fingerprint: `model_fingerprint` of a user's model, or None.
    changes: Settings changed on this resume (`changed_settings`), and
      "model_fingerprint": {key: [before, now]} for a user's model.
    step: The step this run resumes from.
  """
  path = layout.ModelDir(config.train.model_dir).config
  try:
    earlier = read_config(config.train.model_dir) or {}
  except (OSError, ValueError):
    earlier = {}
  history = list(earlier.get("changes") or [])
  if changes and step > 0:
    history.append({"step": step, **changes})
  staging = path + ".tmp"
  record = json.loads(config.to_json())
  if fingerprint is not None:
    record["model_fingerprint"] = fingerprint
  if history:
    record["changes"] = history
  with open(staging, "w", encoding="utf-8") as stream:
    stream.write(json.dumps(record, indent=2, sort_keys=True) + "\n")
  os.replace(staging, path)
  return path


def rate_changed_at(config: RunConfig, changes: dict, step: int) -> int:
  """The step of the latest change to the learning rate's settings (this
  resume's `changes` at `step`, or config.json's history), -1 if none: a
  checkpoint of that step or older holds the earlier rate."""
  try:
    history = list((read_config(config.train.model_dir) or {}).get(
        "changes") or [])
  except (OSError, ValueError, AttributeError):
    history = []
  if changes and step > 0:
    history.append({"step": step, **changes})
  steps = [entry.get("step", -1) for entry in history
           if isinstance(entry, dict) and (
               any(name in entry for name in RATE_OPTIONS)
               or "optimizer_config" in (entry.get("model_fingerprint") or {}))]
  return max(steps, default=-1)


def fingerprint_changes(config: RunConfig, fingerprint: dict) -> dict:
  """{key: [before, now]} where a user's model differs from config.json's
  record of it (empty without one)."""
  try:
    saved = (read_config(config.train.model_dir) or {}).get(
        "model_fingerprint")
  except (OSError, ValueError, AttributeError):
    return {}
  if not isinstance(saved, dict):
    return {}
  return {key: [saved.get(key), fingerprint.get(key)]
          for key in sorted(set(saved) | set(fingerprint))
          if saved.get(key) != fingerprint.get(key)}
