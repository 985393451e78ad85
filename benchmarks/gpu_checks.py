"""The checks of `benchmarks.gpu_scaling`, in order, each yielding its rows.

Each check runs fresh `python -m launch` (or `launch.local`) processes
through `benchmarks.gpu_runs` and turns what they measured (examples/s,
peak GPU memory, TensorFlow's NCCL lines) into `gpu_table.Row`s; later
checks compare with the rates of earlier ones.
"""

from collections.abc import Callable, Iterator
import math
import os

from benchmarks import gpu_runs
from benchmarks.gpu_table import Row
from launch.distributed import devices

# A linear model: its examples/s is the harness's per-step ceiling.
TRIVIAL_MODEL = "benchmarks.gpu_scaling:build_trivial"


class Checks:
  """The checks in order; later ones compare with earlier rates."""

  def __init__(self, *, smoke: bool, visible: list[str], count: int,
               model: str, sizes: gpu_runs.Sizes, work_dir: str,
               tfrecords: str | None, run_timeout: Callable[[], float]):
    self.smoke = smoke
    self.visible = visible
    self.count = count
    self.model = model
    self.sizes = sizes
    self.work_dir = work_dir
    self.tfrecords = tfrecords
    self.run_timeout = run_timeout
    self.unit = "CPU" if smoke else "GPU"
    self.rates: dict[str, float] = {}
    self.gpu_problem = "no GPU" if smoke else ""

  def plan(self) -> list[tuple[str, Callable[[], Iterator[Row]]]]:
    """(check names, the check) in order."""
    n = self.count
    return [
        ("GPUs seen by TensorFlow", self.gpus_seen),
        ("memory policy; 1-device baseline", self.one_device),
        ("NCCL; scaling (1 process)", self.one_process),
        ("NCCL; scaling (workers)", self.workers),
        ("step ceiling", self.step_ceiling),
        ("mixed_float16", lambda: self.variant(
            "mixed_float16", ["--mixed_precision=mixed_float16"])),
        ("jit_compile", lambda: self.variant(
            "jit_compile", ["--jit_compile"], needs_gpu=True)),
        ("mixed_float16 + clip_norm", lambda: self.variant(
            "mixed_float16 + clip_norm",
            ["--mixed_precision=mixed_float16", "--clip_norm=1.0"])),
        ("mixed_float16 + clip_norm + jit_compile", lambda: self.variant(
            "mixed_float16 + clip_norm + jit_compile",
            ["--mixed_precision=mixed_float16", "--clip_norm=1.0",
             "--jit_compile"], needs_gpu=True)),
        (f"2 workers on TFRecords ({n} {self.unit}s)", self.tfrecord_workers),
        ("input ceiling (TFRecords)", self.input_ceiling),
    ]

  def _devices(self, count: int) -> str:
    return devices.plural(count, self.unit)

  def _run(self, name: str, count: int, *, poll_memory: bool = False,
           **kwargs) -> gpu_runs.Result:
    return gpu_runs.execute(
        gpu_runs.Run(name, count, **{"model": self.model, **kwargs}),
        smoke=self.smoke, visible=self.visible[:count], sizes=self.sizes,
        work_dir=self.work_dir, timeout=self.run_timeout(),
        poll_memory=poll_memory)

  def gpus_seen(self) -> Iterator[Row]:
    check, setup = "GPUs seen by TensorFlow", f"{len(self.visible)} given"
    if self.smoke:
      yield Row(check, setup, "skipped: no GPU")
      return
    seen, build = gpu_runs.gpus_seen_by_tensorflow(
        self.visible, timeout=self.run_timeout())
    if seen == 0:
      self.gpu_problem = "TensorFlow sees no GPU (row 1)"
    verdict = "PASS" if seen == len(self.visible) else "FAIL"
    yield Row(check, setup, verdict,
              detail=f"TensorFlow sees {seen} of {len(self.visible)} GPUs"
              f" ({','.join(self.visible)}); {build}")

  def _skip_without_gpus(self, *checks: tuple[str, str]) -> Iterator[Row]:
    for check, setup in checks:
      yield Row(check, setup, f"skipped: {self.gpu_problem}")

  def one_device(self) -> Iterator[Row]:
    setup = f"1 process, 1 {self.unit}, {self.model}"
    if self.gpu_problem and not self.smoke:
      yield from self._skip_without_gpus(("memory policy", setup),
                                         (f"1-{self.unit} baseline", setup))
      return
    result = self._run("baseline", 1, poll_memory=True)
    self.rates["baseline"] = result.examples_per_sec
    if self.smoke:
      yield Row("memory policy", setup, "skipped: no GPU")
    else:
      yield self._memory_row(result, setup)
    yield Row(f"1-{self.unit} baseline", setup, "PASS",
              result.examples_per_sec)

  def _memory_row(self, result: gpu_runs.Result, setup: str) -> Row:
    check = "memory policy (growth)"
    if not result.peak_memory_mb:
      return Row(check, setup, "skipped: no nvidia-smi reading")
    index, (used, total) = next(iter(result.peak_memory_mb.items()))
    share = used / total
    verdict = "PASS" if share < 0.5 else "WARN" if share < 0.9 else "FAIL"
    note = "" if verdict == "PASS" else (
        ": growth did not take effect (TensorFlow takes nearly all by"
        " default)")
    return Row(check, setup, verdict, detail=f"GPU {index} peaked at"
               f" {used:,} of {total:,} MB{note}")

  def _nccl_row(self, result: gpu_runs.Result, check: str, setup: str) -> Row:
    if self.smoke:
      return Row(check, setup, "skipped: no GPU")
    lines = result.nccl_lines()
    if lines:
      return Row(check, setup, "PASS", detail=f"{len(lines)} NCCL lines in"
                 f" the run's log, e.g. {lines[0].strip()[-120:]}")
    return Row(check, setup, "FAIL", detail="no NCCL line in TensorFlow's"
               f" log (TF_CPP_VMODULE={gpu_runs.NCCL_VMODULE},"
               " NCCL_DEBUG=INFO): the all-reduce did not use NCCL")

  def _scaling_row(self, rate: float, check: str, setup: str) -> Row:
    baseline = self.rates.get("baseline")
    if not baseline:
      return Row(check, setup, "skipped: no 1-device baseline", rate)
    efficiency = rate / (baseline * self.count)
    verdict = "PASS" if efficiency >= 0.75 or self.smoke else "WARN"
    detail = (f"efficiency {100 * efficiency:.0f} % (speedup"
              f" {rate / baseline:.2f} on {self._devices(self.count)})")
    if self.smoke:
      detail += "; logical CPUs share the cores, nothing can scale"
    elif verdict == "WARN":
      detail += ("; the all-reduce, the input or per-step overhead waits:"
                 " see the step ceiling and input rows")
    return Row(check, setup, verdict, rate, detail)

  def _needs_devices(self, count: int, *checks: tuple[str, str]
                     ) -> Iterator[Row]:
    for check, setup in checks:
      yield Row(check, setup, f"skipped: needs {self._devices(count)}")

  def one_process(self) -> Iterator[Row]:
    setup = f"1 process, {self._devices(self.count)}, {self.model}"
    yield from self._nccl_and_scaling("mirrored", "1 process", setup)

  def workers(self) -> Iterator[Row]:
    setup = f"{self.count} workers x 1 {self.unit}, {self.model}"
    yield from self._nccl_and_scaling("workers", "workers", setup,
                                      processes=self.count)

  def _nccl_and_scaling(self, kind: str, label: str, setup: str,
                        processes: int = 1) -> Iterator[Row]:
    """NCCL in TensorFlow's log and 1 -> N scaling of one `kind` of run."""
    checks = [(f"NCCL ({label})", setup), (f"scaling ({label})", setup)]
    if self.gpu_problem and not self.smoke:
      yield from self._skip_without_gpus(*checks)
      return
    if self.count < 2:
      yield from self._needs_devices(2, *checks)
      return
    result = self._run(kind, self.count, processes=processes)
    if kind == "mirrored":
      self.rates["mirrored"] = result.examples_per_sec
    yield self._nccl_row(result, *checks[0])
    yield self._scaling_row(result.examples_per_sec, *checks[1])

  def step_ceiling(self) -> Iterator[Row]:
    check = "step ceiling"
    setup = f"1 process, {self._devices(self.count)}, trivial model"
    if self.gpu_problem and not self.smoke:
      yield from self._skip_without_gpus((check, setup))
      return
    result = self._run("trivial", self.count, model=TRIVIAL_MODEL)
    self.rates["trivial"] = ceiling = result.examples_per_sec
    model_rate = self._model_rate()
    if model_rate is None:
      yield Row(check, setup, "PASS", ceiling, "no model rate to compare")
      return
    share = model_rate / ceiling
    verdict = "WARN" if share >= 0.8 and not self.smoke else "PASS"
    bound = ("per-step overhead or the input, not the GPUs, bounds it: raise"
             " --batch_per_gpu" if share >= 0.8 else "the model's compute"
             " bounds it")
    yield Row(check, setup, verdict, ceiling, f"{self.model} runs at"
              f" {100 * share:.0f} % of this ceiling: {bound}")

  def _model_rate(self) -> float | None:
    key = "mirrored" if self.count > 1 else "baseline"
    return self.rates.get(key)

  def variant(self, label: str, flags_: list[str], *,
              needs_gpu: bool = False) -> Iterator[Row]:
    setup = f"1 process, {self._devices(self.count)}, {self.model}"
    if (needs_gpu and self.smoke) or (self.gpu_problem and not self.smoke):
      yield Row(label, setup, f"skipped: {self.gpu_problem}")
      return
    result = self._run(label.replace(" + ", "-"), self.count,
                       flags=tuple(flags_))
    if not math.isfinite(result.last_loss):
      yield Row(label, setup, "FAIL", result.examples_per_sec,
                f"the last logged loss is {result.last_loss}")
      return
    float32 = self._model_rate()
    detail = f"final loss {result.last_loss:.3f}"
    verdict = "PASS"
    if float32:
      ratio = result.examples_per_sec / float32
      detail += f"; {ratio:.2f}x the float32 row's examples/s"
      if ratio < 0.9 and not self.smoke:
        verdict = "WARN"
        detail += " (slower than float32 here: a small model may not gain)"
    yield Row(label, setup, verdict, result.examples_per_sec, detail)

  def _tfrecord_glob(self) -> str:
    if self.tfrecords is None:
      examples = 256 if self.smoke else 16_384
      self.tfrecords = gpu_runs.write_tfrecords(
          os.path.join(self.work_dir, "tfrecords"), examples=examples,
          timeout=self.run_timeout())
    return self.tfrecords

  def tfrecord_workers(self) -> Iterator[Row]:
    check = "2 workers on TFRecords"
    setup = f"2 workers x {self._devices(max(1, self.count // 2))}, trivial"
    if self.gpu_problem and not self.smoke:
      yield from self._skip_without_gpus((check, setup))
      return
    if self.count < 2:
      yield from self._needs_devices(2, (check, setup))
      return
    glob = self._tfrecord_glob()
    devices_used = self.count - self.count % 2
    result = self._run("tfrecords-workers", devices_used, processes=2,
                       model=TRIVIAL_MODEL, train_data=glob)
    yield Row(check, setup, "PASS", result.examples_per_sec, glob)

  def input_ceiling(self) -> Iterator[Row]:
    check = "input ceiling (TFRecords)"
    setup = f"1 process, {self._devices(self.count)}, trivial"
    if self.gpu_problem and not self.smoke:
      yield from self._skip_without_gpus((check, setup))
      return
    result = self._run("tfrecords", self.count, model=TRIVIAL_MODEL,
                       train_data=self._tfrecord_glob())
    ceiling = result.examples_per_sec
    model_rate = self._model_rate()
    if model_rate is None:
      yield Row(check, setup, "PASS", ceiling, "no model rate to compare")
      return
    ratio = ceiling / model_rate
    verdict = "PASS" if ratio >= 1.25 or self.smoke else "WARN"
    detail = (f"the TFRecord input delivers {ratio:.2f}x what {self.model}"
              " consumes on synthetic data")
    if verdict == "WARN":
      detail += ": the input limits training (--cache, more files)"
    yield Row(check, setup, verdict, ceiling, detail)
