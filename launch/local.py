"""`python -m launch.local`: N local workers as one multi-worker job.

TensorFlow has no `torchrun`; this is its equivalent for one machine:

  python -m launch.local --workers=2 --cpu_devices=2 --model_dir=/tmp/run

It picks free localhost ports, gives every worker its TF_CONFIG, starts
`python -m launch` N times with the remaining (training) flags, prefixes each
output line with the worker's name and keeps `model_dir/logs/worker-N.log`.

A worker that exits non-zero, is killed or makes no progress for
`--hang_timeout` seconds fails the group: the others are stopped (SIGTERM,
then SIGKILL after `--stop_grace` seconds, since TensorFlow swallows SIGTERM
in multi-worker runs) and the supervisor exits non-zero, naming the worker,
its status and its last log lines; or, with `--max_restarts`, it starts the
group again, which resumes from the latest checkpoint. SIGINT/SIGTERM to the
supervisor reach every worker as SIGTERM: they stop together at the next
loop boundary, save, and exit 42 (then SIGKILL after `--signal_grace`).

Exit codes: 0 done; 2 bad input (of the supervisor or of the workers);
1 a worker failed (after any restarts); 42 stopped by SIGINT/SIGTERM after
the workers saved a checkpoint; 128+N stopped by signal N without one.
"""

import os
import sys

from absl import flags

from launch import config as config_lib
from launch import devices
from launch import flags as _  # noqa: F401  Defines the training flags.
from launch import supervisor
from launch.errors import ConfigError, fail

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
    " counts as failed; 0 disables the check.", flag_values=_SUPERVISOR_FLAGS)
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


def _parse(argv: list[str]) -> tuple[list[str], config_lib.RunConfig]:
  """Splits supervisor flags from training flags and validates both."""
  try:
    training_args = _SUPERVISOR_FLAGS(argv, known_only=True)[1:]
    flags.FLAGS([argv[0], *training_args])
  except flags.Error as error:
    fail(f"{error}. See python -m launch --helpfull.")
  positional = [arg for arg in training_args if not arg.startswith("-")]
  if positional:
    fail(f"unexpected arguments {' '.join(positional)!r}; all options are"
          " --flags.")
  if _WORKERS.value < 1:
    fail(f"--workers={_WORKERS.value} must be positive.")
  for flag in (_MAX_RESTARTS, _HANG_TIMEOUT, _STOP_GRACE, _SIGNAL_GRACE):
    if flag.value < 0:
      fail(f"--{flag.name}={flag.value} must be zero or more.")
  if os.environ.get("TF_CONFIG"):
    fail("TF_CONFIG is set, but launch.local writes each worker's own;"
          " unset it.")
  try:
    config = config_lib.from_flags()
    config_lib.validate(config)
  except ConfigError as error:
    fail(str(error))
  return training_args, config


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


def main(argv: list[str] | None = None) -> None:
  training_args, config = _parse(list(argv or sys.argv))
  group = supervisor.GroupConfig(
      num_workers=_WORKERS.value, training_args=training_args,
      log_dir=os.path.join(config.train.model_dir, "logs"),
      hang_timeout=_HANG_TIMEOUT.value, stop_grace=_STOP_GRACE.value,
      signal_grace=_SIGNAL_GRACE.value,
      isolate_network=_ISOLATE_NETWORK.value,
      worker_envs=_worker_envs(_WORKERS.value))
  sys.exit(supervisor.run_with_restarts(group,
                                        max_restarts=_MAX_RESTARTS.value))


if __name__ == "__main__":
  main()
