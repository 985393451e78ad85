"""`python -m launch`: train a model as the flags and TF_CONFIG say.

Exit codes: 0 done; 2 bad flags, TF_CONFIG or data (one sentence on stderr,
nothing written); 1 the run failed (a non-finite loss, a dead peer worker, a
collective timeout, unloadable checkpoints: one sentence too); 42 stopped by
SIGTERM/SIGUSR1 after saving a checkpoint (relaunch to resume).
"""

import functools
import logging as pylogging
import os

from absl import app
from absl import logging

from launch import cluster as cluster_lib
from launch import config as config_lib
from launch import devices
from launch import flags as flag_defs
from launch import run as run_lib
from launch.errors import (EXIT_BAD_INPUT, EXIT_PREEMPTED, EXIT_RUN_FAILED,
                           ConfigError, fail, parse_flags)


def _is_peer_failure(error: Exception) -> bool:
  import tensorflow as tf  # Already imported by the run.
  return isinstance(error, (tf.errors.UnavailableError,
                            tf.errors.DeadlineExceededError,
                            tf.errors.CancelledError, tf.errors.AbortedError))


def _first_line(error: Exception) -> str:
  text = str(error).strip()
  return text.splitlines()[0][:300] if text else ""


def _bind_slurm_gpus() -> None:
  """An srun task whose GPUs Slurm did not bind takes its share by local id.

  Before TensorFlow starts: CUDA reads CUDA_VISIBLE_DEVICES only once.
  """
  if "SLURM_PROCID" not in os.environ:
    return
  placement = devices.slurm_task_gpus(
      os.environ, num_node_gpus=devices.node_gpus_if_unlisted(os.environ))
  if placement:
    os.environ.update(placement.env)
    if placement.description:
      logging.info("%s", placement.description)


def main(argv: list[str], model_class=None, hooks=()) -> None:
  """Validates the flags and environment, trains, prints the final eval.

  Args:
    argv: What `errors.parse_flags` left: the program name only.
    model_class: Optional `trainer.model.Model` subclass to train.
    hooks: `trainer.actions.Action`s called at loop and eval ends.
  """
  try:
    config = config_lib.from_flags()
    cluster = cluster_lib.from_environment(
        os.environ, slurm_port_base=flag_defs.SLURM_PORT_BASE.value)
    _bind_slurm_gpus()
    plan = run_lib.plan_run(config, cluster)
  except ConfigError as error:
    fail(str(error), EXIT_BAD_INPUT)
  from trainer import checkpointing, loop  # TensorFlow is loaded by now.
  try:
    logs = run_lib.execute(plan, model_class=model_class, hooks=hooks)
  except ConfigError as error:  # Found while building the model.
    fail(str(error), EXIT_BAD_INPUT)
  except loop.StopRequested as stopped:
    fail(str(stopped), EXIT_PREEMPTED)
  except (FloatingPointError, TimeoutError,
          checkpointing.CheckpointError) as error:
    fail(str(error), EXIT_RUN_FAILED)
  except Exception as error:  # pylint: disable=broad-except
    if not _is_peer_failure(error):
      raise
    fail(f"the run stopped because a peer worker failed or a collective"
          f" timed out ({type(error).__name__}: {_first_line(error)}).",
          EXIT_RUN_FAILED, hard=True)
  step = logs.pop("step", plan.config.train.train_steps)
  if (plan.cluster.is_chief or plan.config.mode == "evaluate") and logs:
    shown = ", ".join(f"{name} {value:.4f}" for name, value in logs.items()
                      if name != "examples")
    print(f"Final eval at step {step}: {shown} ({logs['examples']} examples)",
          flush=True)


class _HarnessInfoFilter(pylogging.Filter):
  """Keeps warnings from everywhere but INFO lines only from the harness.

  TensorFlow logs its own INFO lines (saver sharding, signature renames)
  through absl too; they drown the one progress line per loop.
  """

  _PACKAGES = tuple(os.path.join(os.path.dirname(os.path.dirname(
      os.path.abspath(__file__))), package) + os.sep
                    for package in ("launch", "trainer", "datasets"))

  def filter(self, record: pylogging.LogRecord) -> bool:
    return (record.levelno >= pylogging.WARNING
            or record.pathname.startswith(self._PACKAGES))


def run(model_class=None, hooks=()) -> None:
  """Entry point of `python -m launch` and of the `tfharness` script.

  A user's own script calls `launch.main.run(model_class=MyModel)` to get
  the same flags, checks and loop with a custom `train_step`, and
  `hooks=[...]` (`trainer.actions.Action` subclasses) for its own callbacks.
  """
  # TensorFlow's C++ INFO/WARNING lines drown the progress; keep errors.
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  logging.set_verbosity(logging.INFO)
  logging.get_absl_handler().addFilter(_HarnessInfoFilter())
  app.run(functools.partial(main, model_class=model_class, hooks=hooks),
          flags_parser=parse_flags)
