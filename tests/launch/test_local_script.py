"""`launch.local`'s script form: the split, its checks, stand-in scripts.

Fast: the scripts here do not import TensorFlow; the real multi-worker
script is in tests/integration/test_local_script.py.
"""

import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from launch.local import launcher as local
from launch.local import supervisor
from launch.api import HEARTBEAT_ENV
from tests.processes import harness_env


@pytest.fixture(autouse=True)
def fresh_supervisor_flags(monkeypatch):
  monkeypatch.delenv("TF_CONFIG", raising=False)
  monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
  yield
  local._SUPERVISOR_FLAGS.unparse_flags()


@pytest.mark.parametrize("args,expected", [
    (["--workers=2", "--model_dir=/m", "--train_steps=5"],
     (["--workers=2", "--model_dir=/m", "--train_steps=5"], None, [])),
    (["--workers=2", "train.py", "--workers=5", "data.csv", "--", "-x"],
     (["--workers=2"], "train.py", ["--workers=5", "data.csv", "--", "-x"])),
    (["train.py"], ([], "train.py", [])),
    # The value of a `--flag VALUE` is not the script, even if it ends in .py.
    (["--workers", "3", "--log_dir", "logs.py", "train.py", "--lr", "1"],
     (["--workers", "3", "--log_dir", "logs.py"], "train.py", ["--lr", "1"])),
    (["--noisolate_network", "train.py"],
     (["--noisolate_network"], "train.py", [])),
    (["--", "train.py", "a"], (["--"], "train.py", ["a"])),
    # Not a .py and not there: the flag form, which rejects it.
    (["--workers=2", "train", "--x"], (["--workers=2", "train", "--x"],
                                       None, [])),
])
def test_split_command_line(args, expected):
  split = local.split_command_line(args)
  assert (split.supervisor_args, split.script, split.script_args) == expected


def test_an_existing_file_is_a_script_but_a_training_flag_value_is_not(
    tmp_path):
  script, model_dir = tmp_path / "train", tmp_path / "run"
  script.write_text("print('hi')\n")
  model_dir.mkdir()
  assert local.split_command_line([str(script), "x"]).script == str(script)
  split = local.split_command_line(["--model_dir", str(model_dir),
                                    "--train_steps=5"])
  assert split.script is None


@pytest.mark.parametrize("args,expected", [
    (["--model_dir=/m", "--x"], "/m"),
    (["--lr", "1", "--model_dir", "/m"], "/m"),
    (["--", "--model_dir=/m"], None),
    (["--model_dirs=/m"], None),
    ([], None),
])
def test_model_dir_in_script_args(args, expected):
  assert local.model_dir_in(args) == expected


def write_script(tmp_path, body: str, name: str = "my_train.py") -> str:
  path = tmp_path / name
  path.write_text(textwrap.dedent(body))
  return str(path)


def test_script_group_runs_the_script_with_its_args(tmp_path):
  script = write_script(tmp_path, "pass\n")
  group = local.group_config(["launch.local", "--workers=3", "--hang_timeout=5",
                              script, "--model_dir", str(tmp_path / "run"),
                              "--workers=9"])
  assert group.command == (sys.executable, script)
  assert group.training_args == ["--model_dir", str(tmp_path / "run"),
                                 "--workers=9"]
  assert group.num_workers == 3 and group.hang_timeout == 5
  assert group.heartbeat_env == HEARTBEAT_ENV == "TFHARNESS_HEARTBEAT_FILE"
  assert group.log_dir == str(tmp_path / "run" / "logs")
  assert len(group.worker_envs) == 3


def test_script_log_dir_is_the_flag_else_launch_logs(tmp_path, monkeypatch):
  script = write_script(tmp_path, "pass\n")
  monkeypatch.chdir(tmp_path)
  assert local.group_config(["l", script]).log_dir == "launch_logs"
  assert (tmp_path / "launch_logs").is_dir()
  local._SUPERVISOR_FLAGS.unparse_flags()
  group = local.group_config(["l", f"--log_dir={tmp_path / 'mine'}", script,
                              "--model_dir=elsewhere"])
  assert group.log_dir == str(tmp_path / "mine")


def test_flag_form_is_unchanged(tmp_path):
  model_dir = tmp_path / "run"
  group = local.group_config(["launch.local", "--workers=2",
                              f"--model_dir={model_dir}", "--train_steps=5"])
  assert group.command == (sys.executable, "-m", "launch")
  assert group.training_args == [f"--model_dir={model_dir}",
                                 "--train_steps=5"]
  assert group.heartbeat_env is None
  assert group.log_dir == str(model_dir / "logs")


@pytest.mark.parametrize("args,message", [
    (["missing.py"], "error: script missing.py does not exist."),
    (["DIR"], "is not a file."),
    (["--model_dir=/m", "SCRIPT"], "error: --model_dir is not a supervisor"
     " flag (--workers, --max_restarts,"),
    (["--workers=0", "SCRIPT"], "error: --workers=0 must be positive."),
    (["--hang_timeout=-1", "SCRIPT"],
     "error: --hang_timeout=-1.0 must be zero or more."),
    (["--workers=x", "SCRIPT"], "error: flag --workers=x:"),
    (["--log_dir=FILE/logs", "SCRIPT"],
     "cannot be created (Not a directory); choose another with --log_dir."),
    (["train"], "error: unexpected arguments 'train'; all options are"),
])
def test_bad_script_input_is_one_line_and_exit_2(tmp_path, capsys, args,
                                                 message):
  script = write_script(tmp_path, "pass\n")
  (tmp_path / "FILE").write_text("")
  args = [arg.replace("SCRIPT", script).replace("DIR", str(tmp_path))
          .replace("FILE", str(tmp_path / "FILE")) for arg in args]
  with pytest.raises(SystemExit) as exited:
    local.group_config(["launch.local", *args])
  assert exited.value.code == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and message in err[0], err


def test_tf_config_in_the_environment_is_refused(tmp_path, monkeypatch,
                                                 capsys):
  monkeypatch.setenv("TF_CONFIG", '{"cluster": {}}')
  with pytest.raises(SystemExit) as exited:
    local.group_config(["l", write_script(tmp_path, "pass\n")])
  assert exited.value.code == 2
  assert "TF_CONFIG is set" in capsys.readouterr().err


def test_help_describes_both_forms(capsys):
  with pytest.raises(SystemExit) as exited:
    local.group_config(["launch.local", "--workers=2", "--help", "x.py"])
  assert exited.value.code == 0
  out = capsys.readouterr().out
  assert "my_train.py" in out and "TFHARNESS_HEARTBEAT_FILE" in out
  assert "--log_dir" in out and "--max_restarts" in out


def run_local(args, tmp_path) -> subprocess.CompletedProcess:
  return subprocess.run(
      [sys.executable, "-m", "launch.local", *args], env=harness_env(),
      cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)


def test_stand_in_script_gets_args_env_and_prefixes(tmp_path):
  script = write_script(tmp_path, """\
      import json, os, sys
      task = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
      beat = os.environ["TFHARNESS_HEARTBEAT_FILE"]
      print("task", task, "args", sys.argv[1:], "beat", os.path.basename(beat),
            "threads", os.environ["TF_NUM_INTRAOP_THREADS"])
      """)
  result = run_local(["--workers=2", "--hang_timeout=0.5", script, "--lr", "1",
                      "--heartbeat_file=mine"], tmp_path)
  assert result.returncode == 0, result.stderr
  for index in range(2):
    assert (f"[worker:{index}] task {index} args ['--lr', '1',"
            f" '--heartbeat_file=mine'] beat worker-{index}.heartbeat"
            " threads") in result.stdout
  assert "all 2 workers finished" in result.stdout
  assert (tmp_path / "launch_logs" / "worker-1.log").read_text().startswith(
      "task 1 args")


@pytest.mark.parametrize("code,expected", [(2, 2), (42, 1), (5, 1), (3, 3)])
def test_script_exit_codes(tmp_path, code, expected):
  script = write_script(tmp_path, f"""\
      import os, sys
      sys.exit({code} if os.environ["TF_CONFIG"].endswith("1}}}}") else 0)
      """)
  result = run_local(["--workers=2", "--max_restarts=1", script], tmp_path)
  assert result.returncode == expected, result.stderr
  assert "error: worker:1 " in result.stderr
  assert ("restarting the group" in result.stderr) == (code not in (2, 3))


def test_bad_script_from_the_command_line(tmp_path):
  result = run_local(["--workers=2", "nothere.py", "--x"], tmp_path)
  assert result.returncode == 2
  assert result.stderr.strip() == "error: script nothere.py does not exist."
  assert not (tmp_path / "launch_logs").exists()


def heartbeat_group(tmp_path, program: str, **kwargs):
  return supervisor.GroupConfig(
      num_workers=2, training_args=[], log_dir=str(tmp_path / "logs"),
      command=(sys.executable, "-c", program), heartbeat_env=HEARTBEAT_ENV,
      stop_grace=0.5, isolate_network=False, **kwargs)


def test_a_script_that_never_beats_is_not_judged_hung(tmp_path):
  config = heartbeat_group(tmp_path, "import time; time.sleep(2)",
                           hang_timeout=0.5)
  assert supervisor.run_with_restarts(config, max_restarts=0) == 0


def test_a_script_that_stops_beating_is_hung(tmp_path, capsys):
  program = ("import os, pathlib, time\n"
             "pathlib.Path(os.environ['TFHARNESS_HEARTBEAT_FILE']).touch()\n"
             "time.sleep(30)")
  config = heartbeat_group(tmp_path, program, hang_timeout=1.0)
  assert supervisor.run_with_restarts(config, max_restarts=0) == 1
  assert re.search(r"error: worker:\d, worker:\d made no progress for",
                   capsys.readouterr().err)


_STOPPABLE = """\
    import json, os, signal, sys, time
    index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    def stop(signum, frame):
      print("a checkpoint of that step was saved", flush=True)
      sys.exit(42)
    # The chief saves and exits; worker 1 lingers as TensorFlow's teardown did.
    signal.signal(signal.SIGTERM, stop if index == 0 else signal.SIG_IGN)
    print("ready", flush=True)
    time.sleep(60)
    """


def start_stoppable_group(tmp_path, script=_STOPPABLE):
  script = write_script(tmp_path, script)
  process = subprocess.Popen(
      [sys.executable, "-m", "launch.local", "--workers=2", script],
      env=harness_env(), cwd=tmp_path, stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True)
  ready = 0
  while ready < 2:
    line = process.stdout.readline()
    assert line, process.stderr.read()
    ready += line.endswith("] ready\n")
  return process


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_after_a_signal_the_group_ends_soon_after_the_chief(tmp_path, signum):
  process = start_stoppable_group(tmp_path)
  try:
    started = time.monotonic()
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=30)
    # Not --signal_grace (60 s): 2 s after the chief, the only writer, left.
    assert time.monotonic() - started < 10
    assert process.returncode == 42, stderr
    assert "the workers saved a checkpoint; relaunch" in stderr
  finally:
    process.kill()
    process.wait()


def test_a_second_signal_kills_at_once_and_still_exits_42(tmp_path):
  process = start_stoppable_group(tmp_path, script=_STOPPABLE.replace(
      "stop if index == 0 else signal.SIG_IGN", "signal.SIG_IGN"))
  try:
    started = time.monotonic()
    process.send_signal(signal.SIGINT)
    time.sleep(1)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert time.monotonic() - started < 10
    assert process.returncode == 42, stderr
    assert ("worker:0 was killed by SIGKILL (exit status -9) before saving;"
            " the latest checkpoint is unchanged, relaunch the same command"
            " to resume.") in stderr
  finally:
    process.kill()
    process.wait()


def test_the_group_holds_the_model_dir_lock_and_hands_it_to_the_chief(
    tmp_path):
  script = write_script(tmp_path, """\
      import json, os, sys
      from launch.errors import ConfigError
      from launch.run.model_dir_lock import ModelDirLock
      index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
      model_dir = sys.argv[sys.argv.index("--model_dir") + 1]
      try:
        with ModelDirLock(model_dir):
          print("holds the lock", flush=True)
      except ConfigError as error:
        print("refused:", error, flush=True)
      """)
  model_dir = tmp_path / "run"
  result = run_local(["--workers=2", script, "--model_dir", str(model_dir)],
                     tmp_path)
  assert result.returncode == 0, result.stderr
  assert "[worker:0] holds the lock" in result.stdout
  # Any other process is refused, naming the supervisor that holds it.
  assert re.search(r"\[worker:1\] refused: --model_dir=\S+ is in use by"
                   r" another training run \(pid \d+ on host", result.stdout)
  assert sorted(os.listdir(model_dir)) == ["logs"]  # The lock went with it.
