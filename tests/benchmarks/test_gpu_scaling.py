"""benchmarks/gpu_scaling.py: its rows, its reading of logs, its smoke run."""

import json
import re
import subprocess
import sys

import pytest

from benchmarks import gpu_checks
from benchmarks import gpu_runs
from benchmarks import gpu_scaling
from benchmarks import gpu_table
from benchmarks.gpu_runs import Run, Sizes
from tests.processes import REPO_ROOT, harness_env

GPU_SIZES = Sizes(batch_per_device=256, train_steps=300, steps_per_loop=50)


def test_commands_keep_the_per_gpu_batch_and_one_memory_policy():
  one = gpu_runs.command(Run("m", 4), smoke=False, sizes=GPU_SIZES,
                         model_dir="/d")
  assert one[1:4] == ["-m", "launch", "--strategy=mirrored"]
  assert "--global_batch_size=1024" in one
  assert "--gpu_memory=growth" in one and "--dataset=synthetic" in one
  workers = gpu_runs.command(
      Run("w", 4, processes=2, model="mlp", train_data="/r/*.tfrecord",
          flags=("--jit_compile",)), smoke=True,
      sizes=Sizes(16, 20, 10), model_dir="/d")
  assert workers[1:4] == ["-m", "launch.local", "--workers=2"]
  assert {"--global_batch_size=64", "--cpu_devices=2", "--jit_compile",
          "--train_data=/r/*.tfrecord"} <= set(workers)
  assert "--dataset=synthetic" not in workers
  assert not any(arg.startswith("--gpu_memory") for arg in workers)


def test_runs_log_tensorflows_nccl_modules():
  env = gpu_runs.child_env(["0", "1"], smoke=False)
  assert env["CUDA_VISIBLE_DEVICES"] == "0,1"
  assert env["TF_CPP_MIN_LOG_LEVEL"] == "0"  # VLOG lines are INFO.
  assert "nccl_manager=2" in env["TF_CPP_VMODULE"]


def test_warm_up_loop_is_left_out(tmp_path):
  path = tmp_path / "metrics.jsonl"
  rows = [{"split": "train", "step": 10, "examples_per_sec": 10.0,
           "loss": 2.0},
          {"split": "train", "step": 20, "examples_per_sec": 100.0,
           "loss": 1.5},
          {"split": "eval", "step": 20, "loss": 1.0},
          {"split": "train", "step": 30, "examples_per_sec": 120.0,
           "loss": 1.2},
          {"split": "train", "step": 40, "examples_per_sec": 110.0,
           "loss": 1.1}]
  path.write_text("".join(json.dumps(row) + "\n" for row in rows))
  assert gpu_runs.examples_per_sec(str(path)) == (110.0, 1.1)
  with pytest.raises(gpu_runs.RunFailed, match="no metrics.jsonl"):
    gpu_runs.examples_per_sec(str(tmp_path / "missing.jsonl"))


NCCL_LOG = """\
I0000 00:00:1.0 123 port.cc:153] oneDNN custom operations are on.
I0000 00:00:2.0 123 nccl_manager.cc:201] New NcclManager 0x55d
gpu07:123:456 [0] NCCL INFO comm 0x7f rank 0 nranks 8 - Init COMPLETE
2026-12-06 12:50:22 Collectives: NCCL all-reduce over the 8 GPUs.
"""


def checks(**kwargs) -> gpu_checks.Checks:
  values = dict(smoke=False, visible=["0", "1"], count=2, model="cnn",
                sizes=GPU_SIZES, work_dir="/w", tfrecords=None,
                run_timeout=lambda: 10.0)
  values.update(kwargs)
  return gpu_checks.Checks(**values)


def result(log="", peak=None, rate=100.0, loss=1.0) -> gpu_runs.Result:
  return gpu_runs.Result(rate, loss, log, peak or {})


def test_nccl_is_read_from_tensorflows_and_nccls_own_lines():
  row = checks()._nccl_row(result(NCCL_LOG), "NCCL", "setup")
  assert row.verdict == "PASS"
  assert row.detail.startswith("2 NCCL lines")
  # The harness's own sentence is no evidence.
  harness_only = NCCL_LOG.splitlines()[3]
  row = checks()._nccl_row(result(harness_only), "NCCL", "setup")
  assert row.verdict == "FAIL" and "did not use NCCL" in row.detail


@pytest.mark.parametrize("used, verdict", [(900, "PASS"), (20_000, "WARN"),
                                           (39_000, "FAIL")])
def test_memory_policy_is_judged_by_the_gpus_peak(used, verdict):
  row = checks()._memory_row(result(peak={"0": (used, 40_000)}), "setup")
  assert row.verdict == verdict
  assert f"{used:,} of 40,000 MB" in row.detail
  assert checks()._memory_row(result(), "setup").verdict.startswith(
      "skipped")


def test_scaling_efficiency_is_against_one_device():
  probe = checks(count=4)
  probe.rates["baseline"] = 1000.0
  row = probe._scaling_row(3600.0, "scaling", "setup")
  assert (row.verdict, row.rate) == ("PASS", 3600.0)
  assert row.detail.startswith("efficiency 90 % (speedup 3.60 on 4 GPUs)")
  assert probe._scaling_row(2000.0, "scaling", "setup").verdict == "WARN"


def test_error_line_is_the_exception_or_the_error_sentence():
  output = ("[worker:0] Traceback (most recent call last):\n"
            "[worker:0] RuntimeError: Collective ops must be configured\n"
            "error: worker:0 exited with status 1; the others were stopped.\n")
  assert gpu_runs.last_error_line(output) == (
      "[worker:0] RuntimeError: Collective ops must be configured")
  assert gpu_runs.last_error_line("a\nerror: --x is bad.\nb\n") == (
      "error: --x is bad.")


class FakeChecks:
  """Three checks: a failing run, a good one, a crashing one."""

  def plan(self):
    def failing():
      yield gpu_table.Row("first", "s", "PASS", 1.0)
      raise gpu_runs.RunFailed("exit 1: RuntimeError: boom")

    def good():
      yield gpu_table.Row("good", "s", "PASS", 2.0, "fine")

    def crashing():
      raise ValueError("bad value\nsecond line")
      yield  # pylint: disable=unreachable

    return [("failing", failing), ("good", good), ("crashing", crashing)]


def test_a_failing_check_gives_a_row_and_the_table_goes_on():
  printed = []
  rows = gpu_table.run_checks(
      FakeChecks(), budget=600,
      out=lambda line, **_: printed.append(line))
  assert printed[0] == gpu_table.HEADER
  assert printed[1:] == [
      "| 1 | first | s | PASS | 1 |  |",
      "| 2 | failing |  | FAIL |  | exit 1: RuntimeError: boom |",
      "| 3 | good | s | PASS | 2 | fine |",
      "| 4 | crashing |  | FAIL |  | ValueError: bad value |"]
  assert [row.verdict for row in rows] == ["PASS", "FAIL", "PASS", "FAIL"]


def test_checks_that_no_longer_fit_the_budget_are_skipped():
  times = iter([0.0, 0.0, 540.0, 600.0])  # Start, then before each check.
  printed = []
  gpu_table.run_checks(FakeChecks(), budget=560,
                         clock=lambda: next(times),
                         out=lambda line, **_: printed.append(line))
  assert printed[-2:] == [
      "| 3 | good |  | skipped: time budget (560 s) used up |  |  |",
      "| 4 | crashing |  | skipped: time budget (560 s) used up |  |  |"]


def test_without_gpus_in_tensorflow_gpu_checks_are_skipped():
  probe = checks()
  probe.gpu_problem = "TensorFlow sees no GPU (row 1)"
  rows = list(probe.one_process()) + list(probe.variant("jit", []))
  assert {row.verdict for row in rows} == {
      "skipped: TensorFlow sees no GPU (row 1)"}


def test_bad_gpu_count_exits_2(monkeypatch, capsys):
  monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
  assert gpu_scaling.main(["gpu_scaling", "--gpus=3"]) == 2
  assert "error: --gpus=3 but 2 GPUs are visible; choose 1 to 2." in (
      capsys.readouterr().err)
  assert gpu_scaling.main(["gpu_scaling", "--gpus=0"]) == 2


EXPECTED_SMOKE = [
    ("GPUs seen by TensorFlow", "skipped: no GPU"),
    ("memory policy", "skipped: no GPU"),
    ("1-CPU baseline", "PASS"),
    ("NCCL (1 process)", "skipped: no GPU"),
    ("scaling (1 process)", "PASS"),
    ("NCCL (workers)", "skipped: no GPU"),
    ("scaling (workers)", "PASS"),
    ("step ceiling", "PASS"),
    ("mixed_float16", "PASS"),
    ("jit_compile", "skipped: no GPU"),
    ("mixed_float16 + clip_norm", "PASS"),
    ("mixed_float16 + clip_norm + jit_compile", "skipped: no GPU"),
    ("2 workers on TFRecords", "PASS"),
    ("input ceiling (TFRecords)", "PASS"),
]


@pytest.mark.slow
def test_cpu_smoke_prints_each_row_as_it_goes(tmp_path):
  process = subprocess.Popen(
      [sys.executable, "-m", "benchmarks.gpu_scaling", "--smoke",
       f"--work_dir={tmp_path}"],
      env=harness_env(), cwd=REPO_ROOT, stdout=subprocess.PIPE,
      stderr=subprocess.DEVNULL, text=True)
  lines, running_at_first_row = [], None
  try:
    for line in process.stdout:
      print(line, end="")
      lines.append(line.rstrip("\n"))
      if line.startswith("| 3 |"):  # The first measured row.
        running_at_first_row = process.poll() is None
    process.wait(timeout=60)
  finally:
    process.kill()
  assert running_at_first_row, "the rows came only at the end"
  rows = [line.split(" | ") for line in lines if re.match(r"\| \d+ \|", line)]
  assert [(row[1], row[3]) for row in rows] == EXPECTED_SMOKE, "\n".join(
      lines)
  for row in rows:
    if row[3] == "PASS":  # Each ran, and says how fast.
      assert re.fullmatch(r"[\d,]+", row[4]), row
  assert process.returncode == 0
  assert lines[-1].startswith("14 rows, 0 FAIL, in ")


@pytest.mark.parametrize("code, timeout, reason", [
    ("import time; time.sleep(60)", 1, "no end after 1 s (a hang?)"),
    ("import sys; print('ValueError: bad shape'); sys.exit(3)", 60,
     "exit 3: ValueError: bad shape"),
    ("pass", 60, "the run wrote no metrics.jsonl")])
def test_a_run_that_hangs_crashes_or_writes_nothing_fails_in_one_line(
    monkeypatch, tmp_path, code, timeout, reason):
  monkeypatch.setattr(gpu_runs, "command",
                      lambda *args, **kwargs: [sys.executable, "-c", code])
  with pytest.raises(gpu_runs.RunFailed) as raised:
    gpu_runs.execute(Run("r", 1), smoke=True, visible=[], sizes=GPU_SIZES,
                     work_dir=str(tmp_path), timeout=timeout)
  assert str(raised.value).startswith(reason)
  assert "\n" not in str(raised.value)
