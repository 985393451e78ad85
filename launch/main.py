"""`python -m launch`: train a Keras model with tf.distribute, resumably.

Runs on this machine's GPUs or CPUs, or as one worker of a multi-worker job
(TF_CONFIG, Slurm, or `python -m launch.local`); the same as calling
`launch.fit` with these options. A rerun with the same --model_dir resumes.

Exit codes: 0 done; 2 bad input (flags, TF_CONFIG, data, model: one `error:`
line, nothing written); 1 the run failed; 42 stopped by SIGTERM/SIGUSR1 or
Ctrl-C after saving a checkpoint: relaunch to resume; 130 a Ctrl-C during
start-up or a second one, without saving.
"""

import functools
import sys

from absl import app

from launch.cli import console
from launch import api as fit_lib
from launch.cli import flags as flag_defs
from launch.errors import (EXIT_BAD_INPUT, EXIT_PREEMPTED, EXIT_RUN_FAILED,
                           ConfigError, Preempted, RunFailed, fail,
                           parse_flags)

EXIT_INTERRUPTED = 130  # The shells' status for a SIGINT.


def main(argv: list[str], model_class=None, hooks=()) -> None:
  """Validates the flags and environment, trains, prints the final eval.

  Args:
    argv: What `errors.parse_flags` left: the program name only.
    model_class: Optional `trainer.model.Model` subclass to train.
    hooks: Keras callbacks or `trainer.actions.Action`s.
  """
  del argv
  values = flag_defs.values()
  options = {name: values[name] for name in flag_defs.given()}
  try:
    plan = fit_lib.plan(None, None, options=options, spelling="flags")
    result = fit_lib.run(plan, callbacks=hooks, model_class=model_class,
                         spelling="flags")
  except ConfigError as error:
    fail(str(error), EXIT_BAD_INPUT)
  except Preempted as stopped:
    # Saved and closed: skip TensorFlow's teardown, where a worker whose
    # chief had exited first (and its coordination service with it) waited
    # ~9-20 s for its heartbeats to fail (TF 2.21).
    fail(str(stopped), EXIT_PREEMPTED, hard=True)
  except RunFailed as error:
    fail(str(error), EXIT_RUN_FAILED, hard=error.peer_failure)
  except KeyboardInterrupt as interrupted:
    step = getattr(interrupted, "step", None)
    if step is not None:  # Saved at a boundary, as after SIGTERM.
      fail(f"stopped at step {step} on request (Ctrl-C); a checkpoint of that"
           " step was saved, relaunch to resume.", EXIT_PREEMPTED, hard=True)
    fail("interrupted (Ctrl-C) without saving; the latest checkpoint is"
         " unchanged, relaunch to resume.", EXIT_INTERRUPTED)
  logs = dict(result.logs)
  if (plan.cluster.is_chief or plan.config.mode == "evaluate") and logs:
    shown = ", ".join(f"{name} {value:.4f}" for name, value in logs.items()
                      if name != "examples")
    print(f"Final eval at step {result.step}: {shown}"
          f" ({logs['examples']} examples)", flush=True)


def run(model_class=None, hooks=()) -> None:
  """Entry point of `python -m launch` and of the `tfharness` script.

  A script that wants the command line with its own step calls
  `launch.main.run(model_class=MyModel)`; one that wants no command line
  calls `launch.fit`.
  """
  console.configure_logging(owns_stderr=True)
  program = sys.modules.get("__main__")
  if program is not None and not program.__doc__:
    # The `tfharness` script's __main__ is pip's wrapper: `--help` shows
    # this module's docstring (its prose) instead.
    program.__doc__ = __doc__
  app.run(functools.partial(main, model_class=model_class, hooks=hooks),
          flags_parser=parse_flags)
