"""The local Slurm cluster works, and what srun/sbatch tell each process.

The emulated nodes of partition "emu" are all this host (slurmd -N emuK), so
only what Slurm sets per task is real there, not separate machines.
"""

import socket
import subprocess
import textwrap

import pytest

from launch.distributed import cluster as cluster_lib
from tests.slurm.conftest import srun_task_environments

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def test_srun_runs_two_tasks_on_the_real_host(slurm_cluster):
  result = subprocess.run(
      ["srun", "-p", slurm_cluster.default_partition, "-n2", "hostname"],
      capture_output=True, text=True, timeout=60, check=False)
  assert result.returncode == 0, result.stderr
  assert result.stdout.split() == [socket.gethostname()] * 2


@pytest.mark.parametrize("tasks", [
    ["-n4", "--ntasks-per-node=2"],  # 2 + 2.
    ["-n4"],  # Slurm packs the first node: 3 + 1.
    ["-n3"],  # 2 + 1.
], ids=["n4-2pernode", "n4", "n3"])
@pytest.mark.parametrize("distribution", ["block", "cyclic", "plane=2"])
def test_srun_places_ranks_by_distribution(slurm_cluster, tasks, distribution):
  assert slurm_cluster.emu_partition, (
      "no emu partition: this Slurm was not started by start_slurm.sh")
  envs = srun_task_environments(
      ["-p", slurm_cluster.emu_partition, "-N2", *tasks, "-m", distribution])

  ntasks = int(tasks[0][2:])
  assert [int(env["SLURM_PROCID"]) for env in envs] == list(range(ntasks))
  if tasks == ["-n4"]:  # Not n/N per node: the harness must read Slurm's.
    assert cluster_lib.expand_tasks_per_node(
        envs[0]["SLURM_STEP_TASKS_PER_NODE"]) == [3, 1]
  # Every task computes the same cluster, and its own address in it is the
  # node Slurm really started it on, at the port of its local id.
  infos = [cluster_lib.from_slurm(env, port_base=9000) for env in envs]
  addresses = infos[0].cluster["worker"]
  assert len(set(addresses)) == ntasks
  for rank, (env, info) in enumerate(zip(envs, infos)):
    assert info.cluster["worker"] == addresses
    assert info.task_index == rank
    assert addresses[rank] == (f"{env['SLURMD_NODENAME']}:"
                               f"{9000 + int(env['SLURM_LOCALID'])}")


def _sbatch_wait(script: str, directory, timeout: float = 90) -> None:
  path = directory / "job.sh"
  path.write_text(textwrap.dedent(script))
  result = subprocess.run(
      ["sbatch", "--wait", f"--chdir={directory}",
       f"--output={directory}/slurm-%j.out", str(path)],
      capture_output=True, text=True, timeout=timeout, check=False)
  assert result.returncode == 0, (
      result.stdout + result.stderr +
      "".join(out.read_text() for out in directory.glob("slurm-*.out")))


def _read_env(path) -> dict[str, str]:
  return dict(line.split("=", 1) for line in path.read_text().splitlines()
              if line.startswith("SLURM"))


def test_batch_script_has_no_step_id_but_its_srun_tasks_do(slurm_cluster,
                                                           tmp_path):
  _sbatch_wait(f"""\
      #!/bin/bash
      #SBATCH --ntasks=2 --partition={slurm_cluster.default_partition}
      env > batch.env
      srun bash -c 'env > task$SLURM_PROCID.env'
      """, tmp_path)

  batch = _read_env(tmp_path / "batch.env")
  assert "SLURM_STEP_ID" not in batch and "SLURM_STEPID" not in batch
  # What a launcher must not mistake for "I am task 0 of 2":
  assert (batch["SLURM_PROCID"], batch["SLURM_NTASKS"]) == ("0", "2")
  for rank in range(2):
    task = _read_env(tmp_path / f"task{rank}.env")
    assert (task["SLURM_STEP_ID"], task["SLURM_PROCID"]) == ("0", str(rank))
    assert task["SLURM_JOB_ID"] == batch["SLURM_JOB_ID"]


def test_requeued_batch_job_runs_again_with_restart_count(slurm_cluster,
                                                          tmp_path):
  # start_slurm.sh's cred_expire=5 and 1 s scheduling passes bring the
  # second run about 6-7 s after the requeue (Slurm's defaults: minutes).
  _sbatch_wait("""\
      #!/bin/bash
      #SBATCH --requeue --open-mode=append
      echo "run ${SLURM_RESTART_COUNT:-0}" >> runs.txt
      if [ -z "$SLURM_RESTART_COUNT" ]; then
        scontrol requeue "$SLURM_JOB_ID"
        sleep 60  # SIGTERM from the requeue ends this first run.
      fi
      """, tmp_path)

  assert (tmp_path / "runs.txt").read_text().split("\n")[:-1] == [
      "run 0", "run 1"]
