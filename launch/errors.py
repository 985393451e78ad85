"""The one error type a user's input can cause, and how the tools report it.

Every command-line tool of the harness reports a problem as one line
`error: ...` on stderr and a documented exit code, never a traceback.
"""

import os
import sys

from absl import flags
from absl import logging

from launch.cli import usage


class ConfigError(ValueError):
  """Bad input (options, data, model, TF_CONFIG, environment): exit code 2.

  The message is one sentence; options are spelled as flags (`--name`) on
  the command line and as keywords (`name=`) from `launch.fit`.
  """


class RunFailed(RuntimeError):
  """The run failed (non-finite loss, dead peer, unloadable checkpoints).

  Exit code 1. `peer_failure` is True when a peer worker or a collective
  failed, after which TensorFlow's teardown may block.
  """

  def __init__(self, message: str, *, peer_failure: bool = False):
    super().__init__(message)
    self.peer_failure = peer_failure


class Preempted(RuntimeError):
  """Stopped by SIGTERM/SIGUSR1 (or on request) after saving at `step`.

  Exit code 42: relaunch with the same model_dir to resume.
  """

  def __init__(self, message: str, step: int | None = None):
    super().__init__(message)
    self.step = step


EXIT_BAD_INPUT = 2
EXIT_RUN_FAILED = 1
EXIT_PREEMPTED = 42  # Saved at a loop boundary after SIGTERM/SIGUSR1.


def fail(message: str, exit_code: int = EXIT_BAD_INPUT, *,
         hard: bool = False) -> None:
  """Prints `error: message` and exits with `exit_code`.

  Args:
    message: One sentence: what is wrong.
    exit_code: The process's exit status.
    hard: Skip interpreter teardown. After a peer failure TensorFlow's
      coordination-service shutdown can block on a peer that is alive but
      unresponsive; the run's writers and checkpoints are closed by then.
  """
  print(f"error: {message}", file=sys.stderr, flush=True)
  if hard:
    logging.flush()
    sys.stdout.flush()
    os._exit(exit_code)  # pylint: disable=protected-access
  sys.exit(exit_code)


def parse_flags(argv: list[str]) -> list[str]:
  """absl's `flags_parser`: a bad flag or any positional argument exits 2.

  `--help` (`-h`, `-?`, `--helpshort`) prints the program's own flags,
  grouped, and `--helpfull` absl's too; both exit 0.
  """
  wanted = usage.help_requested(argv[1:])
  if wanted:
    usage.print_help(full=wanted == "full")
    sys.exit(0)
  try:
    argv = flags.FLAGS(argv)
  except flags.Error as error:
    fail(f"{error}. See --help.")
  if len(argv) > 1:
    fail(f"unexpected arguments {' '.join(argv[1:])!r}; all options are"
         " --flags.")
  return argv
