"""A real one-host Slurm cluster for tests, started by start_slurm.sh.

`slurm_cluster` (session scope) makes sure Slurm answers: when `sinfo` does
not, it runs start_slurm.sh (as root: installs slurm-wlm and munge if needed,
starts munged, slurmctld and the slurmds). It skips only where that cannot
work: not root and no Slurm answering, or apt-get refused the install. Any
other failure of the script fails the test with the script's message.

`srun_task_environments` runs one srun step and returns every task's full
environment, to check what srun tells each task (ranks, nodes, layout).
"""

import dataclasses
import json
import os
import shutil
import subprocess
import sys

import pytest

START_SLURM = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                           "start_slurm.sh")
# start_slurm.sh's exit status when apt-get could not install the packages.
_EXIT_INSTALL_FAILED = 3
# Installing from scratch downloads ~4 MB of packages; starting takes < 1 s.
_START_TIMEOUT = 900
_TASK_ENV_PREFIX = "TFHARNESS_TASK_ENV"
# slurmstepd forwards task output in messages of at most 1024 bytes and keeps a
# line whole only if it fits in one, so a longer line from one task can come
# out interleaved with another task's. Each task therefore prints its
# environment as JSON in pieces of this many characters (JSON from json.dumps
# is ASCII without newlines), one line per piece: "PREFIX RANK INDEX/COUNT PIECE".
_TASK_ENV_PIECE = 800
_PRINT_TASK_ENV = f"""
import json, os
text = json.dumps(dict(os.environ), sort_keys=True)
pieces = [text[i:i + {_TASK_ENV_PIECE}]
          for i in range(0, len(text), {_TASK_ENV_PIECE})]
for index, piece in enumerate(pieces):
  print({_TASK_ENV_PREFIX!r}, os.environ.get("SLURM_PROCID", "?"), f"{{index}}/{{len(pieces)}}", piece, flush=True)
"""


def pytest_configure(config):
  config.addinivalue_line(
      "markers", "slurm: needs a real Slurm cluster (tests/slurm/start_slurm.sh)")


@dataclasses.dataclass(frozen=True)
class SlurmCluster:
  """What the tests need to know about the running cluster."""
  partitions: tuple[str, ...]  # All partitions, e.g. ("debug", "emu").
  default_partition: str  # "debug": the real host.
  # "emu": emulated nodes (slurmd -N emuK on this host), or None where the
  # cluster was not started by start_slurm.sh. Only for reading what srun
  # sets per task; every "node" is this host.
  emu_partition: str | None


def _sinfo_partitions() -> list[str] | None:
  """Partition names ("debug*" for the default), or None if Slurm is silent."""
  if shutil.which("scontrol") is None or shutil.which("sinfo") is None:
    return None
  try:
    # A quick probe first: with slurmctld down, sinfo retries for ~9 s.
    ping = subprocess.run(["scontrol", "ping"], capture_output=True,
                          text=True, timeout=20, check=False)
    if ping.returncode != 0:
      return None
    result = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True,
                            text=True, timeout=20, check=False)
  except subprocess.TimeoutExpired:
    return None
  if result.returncode != 0 or not result.stdout.strip():
    return None
  return result.stdout.split()


def _start_cluster() -> None:
  """Runs start_slurm.sh; skips where it cannot be run, fails otherwise."""
  if os.geteuid() != 0:
    if shutil.which("slurmctld") is None:
      pytest.skip("Slurm is not installed and installing it needs root "
                  "(run: sudo bash tests/slurm/start_slurm.sh)")
    pytest.skip("Slurm is installed but not running, and starting its "
                "daemons needs root (run: sudo bash tests/slurm/start_slurm.sh)")
  try:
    result = subprocess.run(["bash", START_SLURM], capture_output=True,
                            text=True, timeout=_START_TIMEOUT, check=False)
  except subprocess.TimeoutExpired:
    pytest.fail(f"start_slurm.sh did not finish within {_START_TIMEOUT} s")
  if result.returncode == _EXIT_INSTALL_FAILED:
    pytest.skip(f"Slurm could not be installed: {result.stderr.strip()}")
  if result.returncode != 0:
    pytest.fail(f"start_slurm.sh exited {result.returncode}: "
                f"{result.stderr.strip()}\n{result.stdout}")


@pytest.fixture(scope="session")
def slurm_cluster() -> SlurmCluster:
  partitions = _sinfo_partitions()
  if partitions is None:
    _start_cluster()
    partitions = _sinfo_partitions()
    assert partitions, "start_slurm.sh succeeded but sinfo shows no partition"
  names = tuple(name.rstrip("*") for name in partitions)
  default = next((name.rstrip("*") for name in partitions
                  if name.endswith("*")), names[0])
  return SlurmCluster(partitions=names, default_partition=default,
                      emu_partition="emu" if "emu" in names else None)


def srun_task_environments(srun_args: list[str],
                           timeout: float = 60) -> list[dict[str, str]]:
  """Every task's full environment under `srun SRUN_ARGS`, by SLURM_PROCID.

  Each task prints its os.environ as JSON, cut into prefixed lines that carry
  the task's rank, so they can be told apart from each other and from
  anything else on srun's output. Raises AssertionError (with srun's stderr)
  when srun fails or a task's output is incomplete.
  """
  command = ["srun", *srun_args, sys.executable, "-c", _PRINT_TASK_ENV]
  result = subprocess.run(command, capture_output=True, text=True,
                          timeout=timeout, check=False)
  assert result.returncode == 0, (
      f"{' '.join(command[:len(srun_args) + 1])} exited {result.returncode}:"
      f"\n{result.stderr}")
  pieces: dict[str, dict[int, str]] = {}
  counts: dict[str, int] = {}
  for line in result.stdout.splitlines():
    _, found, rest = line.partition(_TASK_ENV_PREFIX + " ")  # After any --label.
    if not found:
      continue
    rank, position, piece = rest.split(" ", 2)
    index, count = (int(number) for number in position.split("/"))
    pieces.setdefault(rank, {})[index] = piece
    counts[rank] = count
  environments = []
  for rank, by_index in pieces.items():
    assert sorted(by_index) == list(range(counts[rank])), (
        f"task {rank}: pieces {sorted(by_index)} of {counts[rank]} arrived")
    environments.append(json.loads("".join(by_index[index]
                                           for index in sorted(by_index))))
  return sorted(environments, key=lambda env: int(env["SLURM_PROCID"]))
