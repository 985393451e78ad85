"""Ray Train's `TensorflowTrainer` for `fit`: quiet, one-sentence errors.

    from launch.ray import TensorflowTrainer  # Before anything imports TF.
    from ray.train import ScalingConfig

    def train_loop(config):
      launch.fit(model_fn, train_data, model_dir=..., global_batch_size=64)

    trainer = TensorflowTrainer(train_loop,
                                scaling_config=ScalingConfig(num_workers=2))
    result = trainer.fit()  # result.metrics, result.checkpoint

`fit` reports to Ray by itself in any Ray Train worker (see
`launch.distributed.ray_train`); Ray's own `TensorflowTrainer` works too.
This one, a subclass taking the same arguments, adds what a user sees:

- TensorFlow's C++ start-up lines (the cuInit error among them) are
  filtered as under `python -m launch`, in the driver, Ray Train's
  controller and every worker: Ray's TensorFlow module imports TensorFlow
  unfiltered, so this module imports it quietly first, and the workers
  and the controller import this module before Ray's.
- A harness error (a bad option: `ConfigError`; a failed run: `RunFailed`)
  raised in the workers is raised by `fit()` on the driver as itself, one
  sentence, instead of Ray's `WorkerGroupError` holding each worker's
  traceback; Ray's controller and workers do not log those tracebacks.

Needs `pip install tfharness[ray]` (ray[train,tune] 2.60; the private Ray
names used here were checked against 2.60).
"""

import functools
import importlib.util
import logging as pylogging
import re

from launch.cli import console

if importlib.util.find_spec("ray") is None:
  raise ImportError("launch.ray needs Ray: pip install 'tfharness[ray]'"
                    " (ray[train,tune]==2.60.0).")

console.configure_logging()
console.import_tensorflow()  # Before Ray's TensorFlow module imports it.

# pylint: disable=wrong-import-position
from ray.train import TrainingFailedError
from ray.train.tensorflow import TensorflowConfig as _RayTensorflowConfig
from ray.train.tensorflow import TensorflowTrainer as _RayTensorflowTrainer
from ray.train.tensorflow.config import _TensorflowBackend  # Ray 2.60.

from launch import errors

# Raised by the harness as one sentence that names the cause and the fix.
_HARNESS_ERRORS = (errors.ConfigError, errors.RunFailed)
_HARNESS_ERROR_TEXT = re.compile(
    r"launch\.errors\.(ConfigError|RunFailed|StorageError)\b")


class _HideHarnessTracebacks(pylogging.Filter):
  """Drops Ray's log records that carry a harness error's traceback."""

  def filter(self, record: pylogging.LogRecord) -> bool:
    text = record.getMessage()
    if record.exc_info and record.exc_info[1] is not None:
      text += repr(record.exc_info[1])
    return not _HARNESS_ERROR_TEXT.search(text)


def _hide_harness_tracebacks() -> None:
  """On Ray Train's handlers in this process (configured by then)."""
  for name in ("ray.train", ""):
    for handler in pylogging.getLogger(name).handlers:
      if not any(isinstance(f, _HideHarnessTracebacks)
                 for f in handler.filters):
        handler.addFilter(_HideHarnessTracebacks())


def _prepare_worker() -> None:
  """Runs in each worker first: importing this module imported TF quietly."""


def quiet_worker() -> None:
  """Ray's `worker_process_setup_hook`: TF's start-up lines filtered.

  For Ray workers the trainer does not start (Tune's trial processes):
  `ray.init(runtime_env=launch.ray.runtime_env())`. Importing this module
  (which Ray does to call this) imported TensorFlow quietly.
  """


def runtime_env(**entries) -> dict:
  """A Ray `runtime_env` whose worker processes import TensorFlow quietly.

  Args:
    **entries: Other runtime_env entries (env_vars, working_dir, ...).
  """
  return dict(entries, worker_process_setup_hook="launch.ray.quiet_worker")


class _QuietBackend(_TensorflowBackend):
  """Ray's TensorFlow backend (TF_CONFIG), this module loaded first."""

  def on_start(self, worker_group, backend_config):
    _hide_harness_tracebacks()  # The controller's process.
    worker_group.execute(_prepare_worker)
    super().on_start(worker_group, backend_config)


class TensorflowConfig(_RayTensorflowConfig):
  """Ray's `TensorflowConfig`, with TensorFlow's start-up lines filtered."""

  @property
  def backend_cls(self):
    return _QuietBackend


def _harness_loop(train_loop):
  """`train_loop`, Ray's tracebacks of harness errors left out of the logs."""

  @functools.wraps(train_loop)  # Ray reads its parameters through it.
  def loop(*args):
    _hide_harness_tracebacks()  # A worker's process.
    return train_loop(*args)

  return loop


def harness_error(error: TrainingFailedError) -> Exception | None:
  """The harness error a worker raised (rank 0's first), or None."""
  failures = getattr(error, "worker_failures", None) or {}
  for rank in sorted(failures):
    # Ray 2.60 wraps a worker's exception with its traceback text.
    cause = getattr(failures[rank], "_base_exc", failures[rank])
    if isinstance(cause, _HARNESS_ERRORS):
      return cause
  return None


class TensorflowTrainer(_RayTensorflowTrainer):
  """Ray's `TensorflowTrainer` (same arguments): quiet, one-sentence errors.

  `fit()` returns Ray's `Result` (`metrics`: the last evaluation reported
  by the harness; `checkpoint`: a copy of its final checkpoint) and raises
  `launch.errors.ConfigError` / `RunFailed` as the workers raised them.
  """

  def __init__(self, train_loop_per_worker, *args, tensorflow_config=None,
               **kwargs):
    super().__init__(_harness_loop(train_loop_per_worker), *args,
                     tensorflow_config=tensorflow_config or TensorflowConfig(),
                     **kwargs)

  def fit(self):
    try:
      return super().fit()
    except TrainingFailedError as error:
      cause = harness_error(error)
      if cause is None:
        raise
      raise cause.with_traceback(None) from None
