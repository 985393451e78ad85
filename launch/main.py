"""`python -m launch`: train a Keras model with tf.distribute, resumably.

Runs on this machine's GPUs or CPUs, or as one worker of a multi-worker job
(TF_CONFIG, Slurm, or `python -m launch.local`); the same as calling
`launch.fit` with these options. A rerun with the same --model_dir resumes.

Exit codes: 0 done; 2 bad input (flags, TF_CONFIG, data, model, an unwritable
directory: one `error:` line, nothing written); 1 the run failed; 3 storage
failed during the run (model_dir full, read-only or removed: fix it and
relaunch to resume from the last checkpoint); 42 stopped by SIGTERM/SIGUSR1 or
Ctrl-C after saving a checkpoint: relaunch to resume; 130 a Ctrl-C during
start-up or a second one, without saving.
"""

import functools
import sys
import warnings

from absl import app

from launch import api as fit_lib
from launch.cli import console
from launch.cli import flags as flag_defs
from launch.cli.errors import fail, parse_flags
from launch.errors import (EXIT_BAD_INPUT, EXIT_PREEMPTED, EXIT_RUN_FAILED,
                           EXIT_STORAGE, FLAG_SPELLING, ConfigError,
                           Preempted, RunFailed, StorageError)

EXIT_INTERRUPTED = 130  # The shells' status for a SIGINT.


def main(argv: list[str], model_class=None, callbacks=()) -> None:
  """Validates the flags and environment, trains, prints the final eval.

  Args:
    argv: What `launch.cli.errors.parse_flags` left: the program name only.
    model_class: Optional `trainer.model.Model` subclass to train.
    callbacks: Keras callbacks and `trainer.callbacks.Callback`s.
  """
  del argv
  try:
    plan = fit_lib.plan(None, None, options=flag_defs.given_values(),
                        spelling=FLAG_SPELLING)
    result = fit_lib.run(plan, callbacks=callbacks, model_class=model_class,
                         spelling=FLAG_SPELLING)
  except ConfigError as error:
    fail(str(error), EXIT_BAD_INPUT)
  except Preempted as stopped:
    # Saved and closed: skip TensorFlow's teardown, where a worker whose
    # chief had exited first (and its coordination service with it) waited
    # ~9-20 s for its heartbeats to fail (TF 2.21).
    fail(str(stopped), EXIT_PREEMPTED, hard=True)
  except StorageError as error:
    # Hard: the interpreter's teardown would flush to the failed storage
    # (and may block on live peers); the writers are closed by now.
    fail(str(error), EXIT_STORAGE, hard=True)
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


def run(model_class=None, callbacks=(), *, hooks=None) -> None:
  """Entry point of `python -m launch` and of the `tfharness` script.

  A script that wants the command line with its own step calls
  `launch.main.run(model_class=MyModel)`; one that wants no command line
  calls `launch.fit`.

  Args:
    model_class: Optional `trainer.model.Model` subclass to train.
    callbacks: Keras callbacks and `trainer.callbacks.Callback`s, as
      `launch.fit(callbacks=)`.
    hooks: The old name of `callbacks` (deprecated).
  """
  if hooks is not None:
    warnings.warn("launch.main.run(hooks=...) is now callbacks=...",
                  DeprecationWarning, stacklevel=2)
    if callbacks:
      raise TypeError("give callbacks=, not both callbacks= and hooks=.")
    callbacks = hooks
  console.configure_logging(owns_stderr=True)
  program = sys.modules.get("__main__")
  if program is not None and not program.__doc__:
    # The `tfharness` script's __main__ is pip's wrapper: `--help` shows
    # this module's docstring (its prose) instead.
    program.__doc__ = __doc__
  app.run(functools.partial(main, model_class=model_class,
                            callbacks=callbacks),
          flags_parser=parse_flags)
