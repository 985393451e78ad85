"""`python -m launch.local`: N local workers as one multi-worker job.

TensorFlow has no `torchrun`; this is its equivalent for one machine. It
runs either the harness with training flags, or a script of your own:

  python -m launch.local --workers=2 --cpu_devices=2 --model_dir=/tmp/run
  python -m launch.local --workers=2 my_train.py --epochs=3 data.csv

The first positional argument that ends in `.py` (or names an existing
file) is a script: `python my_train.py ARGS` runs on every worker, ARGS
passed unchanged. Supervisor flags go before the script; without a script
every other flag is a training flag of `python -m launch`
(`python -m launch --help`).

It picks free localhost ports, gives every worker its TF_CONFIG (and its
share of the GPUs and CPU threads), prefixes each output line with the
worker's name and keeps `LOG_DIR/worker-N.log`. LOG_DIR is `--log_dir`,
else `MODEL_DIR/logs` (`--model_dir`, which a script's arguments may hold
too), else `./launch_logs` for a script.

A worker that exits non-zero, is killed or makes no progress for
`--hang_timeout` seconds fails the group: the others are stopped (SIGTERM,
then SIGKILL after `--stop_grace` seconds, since TensorFlow swallows SIGTERM
in multi-worker runs) and the supervisor exits non-zero, naming the worker,
its status and its last log lines; or, with `--max_restarts`, it starts the
group again, which resumes from the latest checkpoint. SIGINT/SIGTERM to the
supervisor reach every worker as SIGTERM: they stop together at the next
loop boundary, save, and exit 42 (then SIGKILL after `--signal_grace`).

Progress is a heartbeat file per worker: `python -m launch` gets its path as
`--heartbeat_file`, a script in the environment variable
TFHARNESS_HEARTBEAT_FILE (`launch.fit` writes it). A script that writes
none is never judged hung: a worker's hang clock starts at its first
heartbeat.

Exit codes: 0 done; 2 bad input (of the supervisor or of the workers);
1 a worker failed (after any restarts); 3 a worker's storage failed
(model_dir full, read-only or removed: fix it and relaunch to resume); 42
stopped by SIGINT/SIGTERM (the workers saved a checkpoint, or were killed
after `--signal_grace` or by a second signal: the last line says which;
relaunch to resume either way). A script's exit status means the same: 2
and 3 are never restarted.
"""

import dataclasses
import os
import sys

from absl import flags

from launch.options import resolve as config_lib
from launch.distributed import devices
from launch.cli import flags as flag_defs  # Also defines the training flags.
from launch.local import supervisor
from launch.run import model_dir_lock
from launch.cli import usage
from launch.api import HEARTBEAT_ENV
from launch.cli.errors import fail
from launch.errors import ConfigError
from trainer import layout

# The supervisor's own flags live apart from the training flags, which are
# validated here and then forwarded unchanged to every worker.
_SUPERVISOR_FLAGS = flags.FlagValues()
_WORKERS = flags.DEFINE_integer(
    "workers", 2, "Worker processes to start.", flag_values=_SUPERVISOR_FLAGS)
_MAX_RESTARTS = flags.DEFINE_integer(
    "max_restarts", 0, "Restart the whole group this many times after a"
    " failure; each restart resumes from the latest checkpoint.",
    flag_values=_SUPERVISOR_FLAGS)
_HANG_TIMEOUT = flags.DEFINE_float(
    "hang_timeout", 600.0, "A worker with no new step for this many seconds"
    " counts as failed; 0 disables the check. A script's worker is judged"
    f" only after its first heartbeat (to ${HEARTBEAT_ENV}).",
    flag_values=_SUPERVISOR_FLAGS)
_STOP_GRACE = flags.DEFINE_float(
    "stop_grace", 3.0, "Seconds between SIGTERM and SIGKILL when stopping"
    " workers after a failure.", flag_values=_SUPERVISOR_FLAGS)
_GPUS_PER_WORKER = flags.DEFINE_integer(
    "gpus_per_worker", None, "GPUs each worker sees, taken in order from the"
    " visible GPUs (CUDA_VISIBLE_DEVICES, else all of the node); default:"
    " the visible GPUs divided by --workers; 0 runs the workers on CPUs.",
    flag_values=_SUPERVISOR_FLAGS)
_ISOLATE_NETWORK = flags.DEFINE_boolean(
    "isolate_network", True, "Run the workers in a private network namespace"
    " with loopback only, so their unauthenticated TensorFlow servers are"
    " reachable from nowhere else (needs CAP_SYS_ADMIN, else a warning);"
    " --noisolate_network if the workers need the network, e.g. a remote"
    " --model_dir.", flag_values=_SUPERVISOR_FLAGS)
_SIGNAL_GRACE = flags.DEFINE_float(
    "signal_grace", 60.0, "Seconds the workers get to save a checkpoint and"
    " exit after SIGINT/SIGTERM to the supervisor.",
    flag_values=_SUPERVISOR_FLAGS)
_LOG_DIR = flags.DEFINE_string(
    "log_dir", None, "Where worker-N.log and the heartbeat files go; default:"
    " MODEL_DIR/logs, or ./launch_logs for a script without --model_dir.",
    flag_values=_SUPERVISOR_FLAGS)

_DEFAULT_SCRIPT_LOG_DIR = "launch_logs"


@dataclasses.dataclass(frozen=True)
class CommandLine:
  """A launch.local command line, split.

  Attributes:
    supervisor_args: The arguments before the script (all of them in the
      flag form): supervisor flags, and training flags in the flag form.
    script: The user's script, or None for `python -m launch`.
    script_args: The script's own arguments, unchanged.
  """

  supervisor_args: list[str]
  script: str | None = None
  script_args: list[str] = dataclasses.field(default_factory=list)


def _takes_value(arg: str) -> bool:
  """Whether `arg` is a known non-boolean `--name` whose value comes next."""
  if not arg.startswith("-") or "=" in arg:
    return False
  name = arg.lstrip("-")
  for flag_values in (_SUPERVISOR_FLAGS, flags.FLAGS):
    if name in flag_values:
      return not flag_values[name].boolean
  return False


def split_command_line(args: list[str]) -> CommandLine:
  """Finds the script in `args` (the arguments after the program name).

  The script is the first positional argument, not counting the values of
  flags written `--name VALUE`, that ends in `.py` or names an existing
  path; everything after it belongs to the script.
  """
  index = 0
  while index < len(args):
    arg = args[index]
    if arg.startswith("-") and arg != "-":
      index += 2 if _takes_value(arg) else 1
      continue
    if arg.endswith(".py") or os.path.exists(arg):
      return CommandLine(args[:index], arg, args[index + 1:])
    break
  return CommandLine(list(args))


def model_dir_in(args: list[str]) -> str | None:
  """The value of `--model_dir=X` (or `--model_dir X`) in a script's args."""
  for index, arg in enumerate(args):
    if arg == "--":
      break
    if arg.startswith(("--model_dir=", "-model_dir=")):
      return arg.split("=", 1)[1] or None
    if arg in ("--model_dir", "-model_dir") and index + 1 < len(args):
      return args[index + 1]
  return None


def _print_help() -> None:
  usage.print_help(_SUPERVISOR_FLAGS, doc=__doc__,
                   program="python -m launch.local",
                   ungrouped="supervisor flags",
                   notes=["Training flags: python -m launch --help."])


def _parse_supervisor_flags(program: str, args: list[str], *,
                            known_only: bool) -> list[str]:
  """Parses the supervisor flags in `args`; returns the other arguments."""
  if usage.help_requested(args):
    _print_help()
    sys.exit(0)
  try:
    return _SUPERVISOR_FLAGS([program, *args], known_only=known_only)[1:]
  except flags.UnrecognizedFlagError as error:
    # Only in the script form: the flag form passes unknown flags on.
    names = ", ".join(f"--{name}" for name in _SUPERVISOR_FLAGS)
    fail(f"--{error.flagname} is not a supervisor flag ({names}); the"
         " script's own arguments go after the script.")
  except flags.Error as error:
    fail(f"{error}. See python -m launch.local --help.")
  return []  # Not reached: fail() exits.


def _check_supervisor_flags() -> None:
  if _WORKERS.value < 1:
    fail(f"--workers={_WORKERS.value} must be positive.")
  for flag in (_MAX_RESTARTS, _HANG_TIMEOUT, _STOP_GRACE, _SIGNAL_GRACE):
    if flag.value < 0:
      fail(f"--{flag.name}={flag.value} must be zero or more.")
  if os.environ.get("TF_CONFIG"):
    fail("TF_CONFIG is set, but launch.local writes each worker's own;"
         " unset it.")


def _parse(argv: list[str]) -> tuple[list[str], config_lib.RunConfig]:
  """Splits supervisor flags from training flags and validates both."""
  training_args = _parse_supervisor_flags(argv[0], argv[1:], known_only=True)
  try:
    flags.FLAGS([argv[0], *training_args])
  except flags.Error as error:
    fail(f"{error}. See python -m launch --help.")
  positional = [arg for arg in training_args if not arg.startswith("-")]
  if positional:
    fail(f"unexpected arguments {' '.join(positional)!r}; all options are"
         " --flags, and a script to run must end in .py or exist.")
  _check_supervisor_flags()
  try:
    config = config_lib.to_config(flag_defs.given_values())
  except ConfigError as error:
    fail(str(error))
  return training_args, config


def _parse_script(program: str, command_line: CommandLine) -> str:
  """Validates the script form's supervisor flags and script; the log dir."""
  script = command_line.script
  _parse_supervisor_flags(program, command_line.supervisor_args,
                          known_only=False)
  if not os.path.exists(script):
    fail(f"script {script} does not exist.")
  if not os.path.isfile(script):
    fail(f"script {script} is not a file.")
  _check_supervisor_flags()
  model_dir = model_dir_in(command_line.script_args)
  return _LOG_DIR.value or (layout.ModelDir(model_dir).logs if model_dir
                            else _DEFAULT_SCRIPT_LOG_DIR)


def _make_log_dir(log_dir: str) -> None:
  try:
    os.makedirs(log_dir, exist_ok=True)
  except OSError as error:
    fail(f"the log directory {log_dir} cannot be created ({error.strerror});"
         " choose another with --log_dir.")


def _thread_env(num_workers: int) -> dict[str, str]:
  """CPU threads per worker: the cores shared out, unless the user chose.

  N TensorFlow processes each sizing their thread pools to the whole
  machine oversubscribe it (torchrun sets OMP_NUM_THREADS=1 for the same
  reason); measured with 2 MLP workers on 2 cores: +8 % examples/s.
  """
  # The CPUs this process may use (affinity, e.g. srun --cpus-per-task),
  # not all of the machine's.
  threads = str(max(1, len(os.sched_getaffinity(0)) // num_workers))
  return {name: threads for name in ("TF_NUM_INTRAOP_THREADS",
                                     "TF_NUM_INTEROP_THREADS")
          if name not in os.environ}


def _worker_envs(num_workers: int) -> tuple[dict[str, str], ...]:
  """Each worker's GPUs (its share of the visible ones) and CPU threads."""
  try:
    placement = devices.place_local_workers(
        os.environ, num_workers=num_workers,
        gpus_per_worker=_GPUS_PER_WORKER.value,
        num_node_gpus=devices.node_gpus_if_unlisted(os.environ))
  except ConfigError as error:
    fail(str(error))
  if placement.describe():
    print(f"[supervisor] {placement.describe()}", flush=True)
  threads = _thread_env(num_workers)
  return tuple({**placement.env(index), **threads}
               for index in range(num_workers))


def group_config(argv: list[str]) -> supervisor.GroupConfig:
  """The group a command line asks for; bad input exits 2 first."""
  command_line = split_command_line(argv[1:])
  if command_line.script is None:
    training_args, config = _parse(argv)
    log_dir = _LOG_DIR.value or layout.ModelDir(config.train.model_dir).logs
    program = dict(training_args=training_args)
    # The model_dir this group trains into (evaluating only reads it).
    model_dir = config.train.model_dir if config.mode == "train" else None
  else:
    log_dir = _parse_script(argv[0], command_line)
    program = dict(command=(sys.executable, command_line.script),
                   training_args=command_line.script_args,
                   heartbeat_env=HEARTBEAT_ENV)
    model_dir = model_dir_in(command_line.script_args)
  try:  # Before this group's logs go into another run's model_dir.
    if model_dir:
      model_dir_lock.check_free(model_dir)
  except ConfigError as error:
    fail(str(error))
  worker_envs = _worker_envs(_WORKERS.value)
  _make_log_dir(log_dir)
  return supervisor.GroupConfig(
      num_workers=_WORKERS.value, log_dir=log_dir,
      hang_timeout=_HANG_TIMEOUT.value, stop_grace=_STOP_GRACE.value,
      signal_grace=_SIGNAL_GRACE.value,
      isolate_network=_ISOLATE_NETWORK.value, worker_envs=worker_envs,
      model_dir=model_dir, **program)


def main(argv: list[str] | None = None) -> None:
  group = group_config(list(argv or sys.argv))
  sys.exit(supervisor.run_with_restarts(group,
                                        max_restarts=_MAX_RESTARTS.value))


if __name__ == "__main__":
  main()
