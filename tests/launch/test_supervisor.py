"""The supervisor's watch logic with stand-in worker programs (fast)."""

import signal
import sys

from launch.local import supervisor
from launch.local import worker

SLEEPER = (sys.executable, "-c", "import sys, time; print('up', flush=True);"
           " time.sleep(60)")


def group_config(tmp_path, command, **kwargs):
  return supervisor.GroupConfig(num_workers=2, training_args=[],
                                log_dir=str(tmp_path / "logs"),
                                command=command, **kwargs)


def test_workers_without_heartbeat_are_hung_and_all_named(tmp_path, capsys):
  config = group_config(tmp_path, SLEEPER, hang_timeout=1.0, stop_grace=0.5)
  assert supervisor.run_with_restarts(config, max_restarts=0) == 1
  assert "error: worker:0, worker:1 made no progress for" in (
      capsys.readouterr().err)


def test_only_the_silent_worker_is_named_hung(tmp_path, capsys):
  # Worker 0 touches its heartbeat file (the last argument) every 0.1 s;
  # worker 1 never does.
  beating = (sys.executable, "-c", "import os, pathlib, sys, time\n"
             "beat = pathlib.Path(sys.argv[-1].split('=', 1)[1])\n"
             "for _ in range(600):\n"
             "  if os.environ['TF_CONFIG'].endswith('0}}'): beat.touch()\n"
             "  time.sleep(0.1)")
  config = group_config(tmp_path, beating, hang_timeout=1.5, stop_grace=0.5)
  assert supervisor.run_with_restarts(config, max_restarts=0) == 1
  err = capsys.readouterr().err
  assert "error: worker:1 made no progress for" in err
  assert "worker:0, " not in err


def test_failure_names_worker_status_and_tail(tmp_path, capsys):
  crash = (sys.executable, "-c", "import os, sys; print('about to fail');"
           " sys.exit(5 if os.environ['TF_CONFIG'].endswith('1}}') else 0)")
  config = group_config(tmp_path, crash)
  assert supervisor.run_with_restarts(config, max_restarts=1) == 1
  err = capsys.readouterr().err
  assert "error: worker:1 exited with status 5" in err
  assert "about to fail" in err
  assert "restarting the group (1 of 1)" in err
  assert (tmp_path / "logs" / "worker-1.log").read_text().count(
      "about to fail") == 2  # One line per attempt, appended.


def test_exit_2_is_not_restarted(tmp_path, capsys):
  bad = (sys.executable, "-c", "import sys; sys.exit(2)")
  config = group_config(tmp_path, bad)
  assert supervisor.run_with_restarts(config, max_restarts=5) == 2
  assert "restarting" not in capsys.readouterr().err


def test_a_storage_fault_is_not_restarted_and_a_gone_log_is_named(
    tmp_path, capsys):
  # The worker removes its own log directory, as a removed model_dir does.
  full = (sys.executable, "-c", "import os, shutil, sys; print('disk gone');"
          f" shutil.rmtree({str(tmp_path / 'logs')!r}, ignore_errors=True);"
          " sys.exit(3)")
  config = group_config(tmp_path, full)
  assert supervisor.run_with_restarts(config, max_restarts=5) == 3
  err = capsys.readouterr().err
  assert "restarting" not in err
  assert (f"exited with status 3; the other workers were stopped. Last lines"
          f" of its output (its log {tmp_path / 'logs'}/worker-") in err
  assert "disk gone" in err


def test_a_log_on_a_full_disk_does_not_block_the_workers(tmp_path, capsys):
  # Without draining the pipe after the log fails, a chatty worker blocks.
  from tests import mounts
  mounts.require_mounts()
  chatty = (sys.executable, "-c", "for i in range(3000): print('x' * 1000)")
  with mounts.tmpfs(tmp_path / "logs", "512k"):
    config = group_config(tmp_path, chatty, hang_timeout=30.0)
    assert supervisor.run_with_restarts(config, max_restarts=0) == 0
  captured = capsys.readouterr()
  assert f"warning: cannot write {tmp_path / 'logs'}/worker-" in captured.err
  assert "(No space left on device)" in captured.err
  assert captured.out.count("x" * 1000) == 6000  # Every line still shown.


def test_workers_get_distinct_ports_and_worker_zero_is_chief():
  import json
  configs = [json.loads(c) for c in supervisor.worker_tf_configs(3)]
  addresses = configs[0]["cluster"]["worker"]
  assert len(set(addresses)) == 3
  assert [c["task"] for c in configs] == [
      {"type": "worker", "index": i} for i in range(3)]


def test_describe_status():
  assert worker.describe_status(-signal.SIGKILL) == (
      "was killed by SIGKILL (exit status -9)")
  assert worker.describe_status(1) == "exited with status 1"


def test_each_worker_gets_its_own_variables(tmp_path, capsys):
  printer = (sys.executable, "-c", "import os; print('sees',"
             " os.environ['CUDA_VISIBLE_DEVICES'],"
             " os.environ['TF_NUM_INTRAOP_THREADS'])")
  config = group_config(tmp_path, printer, worker_envs=(
      {"CUDA_VISIBLE_DEVICES": "3,5", "TF_NUM_INTRAOP_THREADS": "4"},
      {"CUDA_VISIBLE_DEVICES": "6,7", "TF_NUM_INTRAOP_THREADS": "4"}))
  assert supervisor.run_with_restarts(config, max_restarts=0) == 0
  out = capsys.readouterr().out
  assert "[worker:0] sees 3,5 4" in out
  assert "[worker:1] sees 6,7 4" in out
