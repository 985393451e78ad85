"""`python -m launch.local --workers=2 my_train.py`: a script of the user's.

The script does not use the harness: it reads TF_CONFIG, builds its own
MultiWorkerMirroredStrategy and all-reduces across the two workers.
"""

import textwrap

import pytest

from tests.processes import Supervisor

pytestmark = pytest.mark.slow

ALL_REDUCE_SCRIPT = textwrap.dedent("""\
    import json
    import os
    import sys

    import tensorflow as tf

    task = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    if "--fail_on_worker_1" in sys.argv and task == 1:
      sys.exit(5)  # Worker 0 is left waiting in its first all-reduce.
      # (5: any failure; 2 and 3 mean bad input and storage, not retried.)


    def replica_sum(value):
      # Made on the replica's device: an all-reduce needs a placed tensor.
      value = tf.identity(value)
      return tf.distribute.get_replica_context().all_reduce("sum", value)


    @tf.function
    def all_reduce(value):
      return strategy.run(replica_sum, args=(value,))


    for step in range(3):
      total = all_reduce(tf.constant(float(task + 1 + step)))
      print(f"task {task} step {step} sum {float(total):g}", flush=True)
    print(f"task {task} args {sys.argv[1:]}", flush=True)
    """)


def run_script(tmp_path, *args: str) -> Supervisor:
  script = tmp_path / "my_train.py"
  script.write_text(ALL_REDUCE_SCRIPT)
  supervisor = Supervisor(["--workers=2", "--stop_grace=1", str(script),
                           f"--model_dir={tmp_path / 'run'}", *args],
                          tmp_path / "supervisor.out")
  supervisor.wait(timeout=60)
  return supervisor


def test_two_workers_all_reduce_in_a_plain_tensorflow_script(tmp_path):
  supervisor = run_script(tmp_path, "--steps", "3")
  output = supervisor.output
  assert supervisor.process.returncode == 0, output[-3000:]
  for task in range(2):
    for step in range(3):
      # 1 + 2 from the two workers, each adding the step.
      assert f"[worker:{task}] task {task} step {step} sum {3 + 2 * step}" in (
          output)
    assert (f"[worker:{task}] task {task} args ['--model_dir="
            f"{tmp_path / 'run'}', '--steps', '3']") in output
  assert "all 2 workers finished" in output
  logs = tmp_path / "run" / "logs"
  assert "task 1 step 2 sum 7" in (logs / "worker-1.log").read_text()


def test_a_failing_script_fails_the_group_and_is_named(tmp_path):
  supervisor = run_script(tmp_path, "--fail_on_worker_1")
  output = supervisor.output
  assert supervisor.process.returncode == 1, output[-3000:]
  assert ("error: worker:1 exited with status 5; the other workers were"
          " stopped") in output
  assert "task 0 step 0" not in output
