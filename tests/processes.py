"""Helpers to run the harness in real processes: ports, env, cleanup."""

import os
import re
import signal
import subprocess
import sys
import tempfile

from launch.local import supervisor
from launch.local.supervisor import worker_tf_configs  # noqa: F401  Re-exported.

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
  """A port the OS just handed out on 127.0.0.1 (never a fixed one)."""
  return supervisor.free_ports(1)[0]


def harness_env(**extra: str) -> dict[str, str]:
  """The environment of a harness process: repo importable, no TF_CONFIG.

  A PYTHONPATH in `extra` is added after the repository, not instead of it.
  """
  env = dict(os.environ)
  env.pop("TF_CONFIG", None)
  env["TF_CPP_MIN_LOG_LEVEL"] = "2"
  paths = [REPO_ROOT, extra.pop("PYTHONPATH", ""), env.get("PYTHONPATH", "")]
  env["PYTHONPATH"] = os.pathsep.join(path for path in paths if path)
  env.update(extra)
  return env


def run_launch(args: list[str], *, timeout: float = 180,
               **env: str) -> subprocess.CompletedProcess:
  """Runs `python -m launch ARGS` to completion and captures its output."""
  return subprocess.run([sys.executable, "-m", "launch", *args],
                        env=harness_env(**env), capture_output=True,
                        text=True, timeout=timeout, cwd=REPO_ROOT,
                        check=False)


def run_workers(args: list[str], num_workers: int, *, timeout: float = 240,
                **env: str) -> list[subprocess.CompletedProcess]:
  """Starts `num_workers` harness processes as one cluster and waits.

  Output goes to files, not pipes, so a chatty worker cannot block on a full
  pipe while its peers wait for it in a collective. Every process is killed
  if any wait fails or times out, so a hang never outlives the test.
  """
  processes, logs = [], []
  try:
    for tf_config in worker_tf_configs(num_workers):
      log = tempfile.TemporaryFile(mode="w+")
      logs.append(log)
      processes.append(subprocess.Popen(
          [sys.executable, "-m", "launch", *args],
          env=harness_env(TF_CONFIG=tf_config, **env), cwd=REPO_ROOT,
          stdout=log, stderr=subprocess.STDOUT, text=True))
    results = []
    for process, log in zip(processes, logs):
      process.wait(timeout=timeout)
      log.seek(0)
      results.append(subprocess.CompletedProcess(
          process.args, process.returncode, log.read(), ""))
    return results
  finally:
    for process in processes:
      if process.poll() is None:
        process.send_signal(signal.SIGKILL)
        process.wait()
    for log in logs:
      log.close()


def launch_in_this_process(args: list[str]) -> tuple[int, list[str]]:
  """`python -m launch ARGS` up to its exit, run by `launch.main` right here.

  For cases where a separate process is not the point (a process costs
  seconds of TensorFlow import). Flags are restored afterwards.

  Returns:
    The exit code (0 if `main` returned) and the `error:` lines on stderr.
  """
  import contextlib
  import io
  from absl.testing import flagsaver
  from launch import main
  stderr, code = io.StringIO(), 0
  with flagsaver.flagsaver(), contextlib.redirect_stderr(stderr):
    try:
      main.main(main.parse_flags(["launch", *args]))
    except SystemExit as exited:
      code = exited.code
  return code, [line for line in stderr.getvalue().splitlines()
                if line.startswith("error:")]


def command_line(pid: int) -> str:
  """The command line of a live process ("" if it is gone)."""
  try:
    with open(f"/proc/{pid}/cmdline", "rb") as stream:
      return stream.read().replace(b"\0", b" ").decode(errors="replace")
  except OSError:
    return ""


class Supervisor:
  """`python -m launch.local ARGS` in the background, output in a file."""

  def __init__(self, args: list[str], output_path):
    self.output_path = output_path
    self._output = open(output_path, "w", encoding="utf-8")
    self.process = subprocess.Popen(
        [sys.executable, "-m", "launch.local", *args], env=harness_env(),
        cwd=REPO_ROOT, stdout=self._output, stderr=subprocess.STDOUT)

  @property
  def output(self) -> str:
    return self.output_path.read_text(encoding="utf-8")

  def started_pids(self) -> list[tuple[int, int]]:
    """(worker index, pid) of every "started" line so far, in order."""
    return [(int(index), int(pid)) for index, pid in re.findall(
        r"started worker:(\d+) \(pid (\d+),", self.output)]

  def worker_pid(self, index: int) -> int:
    """The pid of worker `index` of the first start."""
    return dict(self.started_pids()[::-1])[index]

  def wait(self, timeout: float = 180) -> int:
    try:
      return self.process.wait(timeout=timeout)
    finally:
      self.kill()

  def kill(self) -> None:
    """Ends the supervisor and any worker of it still running."""
    if self.process.poll() is None:
      self.process.kill()
      self.process.wait()
    self._output.close()
    for _, pid in self.started_pids():
      # Only if that pid is still one of this run's workers: pids are reused.
      if str(self.output_path.parent) in command_line(pid):
        os.kill(pid, signal.SIGKILL)
