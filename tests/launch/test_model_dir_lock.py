"""`launch.run.model_dir_lock`: one training run per model_dir."""

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from launch.errors import ConfigError
from launch.run import model_dir_lock
from launch.run.model_dir_lock import ModelDirLock
from tests.processes import REPO_ROOT, harness_env

_HOLD_SCRIPT = """
import sys, time
from launch.run.model_dir_lock import ModelDirLock
with ModelDirLock(sys.argv[1]):
  print("held", flush=True)
  time.sleep(120)
"""


def _hold_in_another_process(model_dir) -> subprocess.Popen:
  holder = subprocess.Popen([sys.executable, "-c", _HOLD_SCRIPT,
                             str(model_dir)], env=harness_env(),
                            cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
  assert holder.stdout.readline().strip() == "held"
  return holder


def test_a_second_holder_is_refused_naming_the_first(tmp_path):
  model_dir = tmp_path / "run"
  with ModelDirLock(str(model_dir)):
    with pytest.raises(ConfigError) as refused:
      with ModelDirLock(str(model_dir)):
        pytest.fail("two holders")
    model_dir_lock_text = str(refused.value)
    with pytest.raises(ConfigError):
      model_dir_lock.check_free(str(model_dir))
  assert model_dir_lock_text == (
      f"--model_dir={model_dir} is in use by another training run (pid"
      f" {os.getpid()} on host {socket.gethostname()}, started "
      + model_dir_lock_text.split(", started ")[1])
  assert model_dir_lock_text.endswith(
      "wait for it to end or stop it, or use another --model_dir.")


def test_released_on_return_and_on_raise(tmp_path):
  model_dir = tmp_path / "run"
  model_dir.mkdir()
  with ModelDirLock(str(model_dir)):
    pass
  with pytest.raises(RuntimeError):
    with ModelDirLock(str(model_dir)):
      raise RuntimeError("the run failed")
  with ModelDirLock(str(model_dir)):  # Free again both times.
    model_dir_lock.check_free(str(tmp_path / "elsewhere"))
  assert os.listdir(model_dir) == []  # The lock file goes with the holder.


def test_a_directory_made_only_for_the_lock_is_removed(tmp_path):
  model_dir = tmp_path / "new"
  with ModelDirLock(str(model_dir)):
    assert sorted(os.listdir(model_dir)) == [".lock"]
  assert not model_dir.exists()  # Bad input afterwards leaves no trace.
  with ModelDirLock(str(model_dir)):
    (model_dir / "config.json").write_text("{}")
  assert os.listdir(model_dir) == ["config.json"]


def test_a_killed_holder_never_blocks_the_next_run(tmp_path):
  model_dir = tmp_path / "run"
  holder = _hold_in_another_process(model_dir)
  try:
    with pytest.raises(ConfigError, match=f"pid {holder.pid} on host"):
      with ModelDirLock(str(model_dir)):
        pass
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert (model_dir / ".lock").exists()  # Left behind, but not held.
    model_dir_lock.check_free(str(model_dir))
    with ModelDirLock(str(model_dir)):
      pass
  finally:
    holder.kill()
    holder.wait()


def test_stale_file_of_a_released_holder_is_not_shared(tmp_path):
  # A waiter that opened the lock file just before its holder removed it
  # must not lock that removed file while a third run locks a new one.
  model_dir = tmp_path / "run"
  first = ModelDirLock(str(model_dir)).__enter__()
  stale = os.open(model_dir / ".lock", os.O_RDONLY)
  try:
    first.__exit__(None, None, None)
    with ModelDirLock(str(model_dir)):
      assert (os.fstat(stale).st_ino
              != os.stat(model_dir / ".lock").st_ino)
      with pytest.raises(ConfigError):
        with ModelDirLock(str(model_dir)):
          pass
  finally:
    os.close(stale)


def test_the_lock_is_not_inherited_by_child_processes(tmp_path):
  model_dir = tmp_path / "run"
  with ModelDirLock(str(model_dir)):
    child = subprocess.Popen(["sleep", "60"])
  try:
    time.sleep(0.1)
    with ModelDirLock(str(model_dir)):  # The child holds no copy of it.
      pass
  finally:
    child.kill()
    child.wait()


def test_an_unwritable_model_dir_is_one_sentence(tmp_path):
  model_dir = tmp_path / "run"
  model_dir.mkdir()
  (model_dir / ".lock").mkdir()  # Not a file: opening it fails as EROFS would.
  with pytest.raises(ConfigError, match=(
      rf"^--model_dir={model_dir} cannot be written \(Is a directory: "
      rf"{model_dir}/.lock\); choose a writable --model_dir\.$")):
    with ModelDirLock(str(model_dir)):
      pass
