"""How the command-line tools report bad input: one `error:` line, an exit code.

Every command-line tool of the harness reports a problem as one line
`error: ...` on stderr and a documented exit code (`launch.errors`), never
a traceback.
"""

import os
import sys

from absl import flags
from absl import logging

from launch.cli import usage
from launch.errors import EXIT_BAD_INPUT


def fail(message: str, exit_code: int = EXIT_BAD_INPUT, *,
         hard: bool = False) -> None:
  """Prints `error: message` and exits with `exit_code`.

  Args:
    message: One sentence: what is wrong (a `ConfigError` is spelled with
      flags by its `str`).
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
