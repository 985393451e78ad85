"""`python -m benchmarks.gpu_scaling`: first contact with a GPU node, one table.

One command checks what would break or disappoint first on a node of N GPUs
(N = the visible GPUs, or `--gpus`) and prints a Markdown row per check AS IT
GOES; a failing check gives a FAIL row with its one-line reason and the next
check runs. Every training run is a fresh `python -m launch` (or
`python -m launch.local`) process on synthetic data with `--batch_per_gpu`
examples per GPU, `--gpu_memory=growth` in every row (so rows compare), and
its own model_dir:

1.  GPUs seen: how many GPUs TensorFlow lists in a child given the N, and
    what it was built for (a CPU-only TensorFlow sees none).
2.  memory policy and 3. 1-GPU baseline: one process on 1 GPU; the GPU's
    peak memory (`nvidia-smi`, polled) must stay well below its size, or
    `growth` did not take effect.
4.  NCCL and 5. scaling, one process: mirrored over the N GPUs; NCCL must
    appear in TensorFlow's own log (the run has `TF_CPP_VMODULE` on its NCCL
    modules and `NCCL_DEBUG=INFO`); efficiency = examples/s / (N x 1 GPU's).
6.  NCCL and 7. scaling, N local workers of 1 GPU (MultiWorkerMirrored).
8.  step ceiling: a trivial (linear) model on the N GPUs: if the real
    model comes close to it, per-step overhead or input, not the GPUs,
    bounds the throughput.
9.-12. `mixed_float16`, `--jit_compile`, `mixed_float16 --clip_norm`, and
    all three (the path where replicas once disagreed on a loss-scale
    overflow and hung), against the float32 row.
13. 2 local workers on TFRecords (the user's `--tfrecords`, else written
    here the way a user would, with a schema.json), trivial model.
14. input ceiling: the trivial model on the TFRecords in one process on
    the N GPUs, against the real model's synthetic rate: lower means the
    input pipeline limits training.

Time on an 8-GPU node (estimate; no GPU was available to measure): each
run costs ~15 s of start-up (Python and TensorFlow import ~5 s, CUDA and
NCCL initialisation ~5 s, building and tracing ~5 s), 300 steps of the CNN
at 256 examples per GPU (~5 ms a step on V100/A100-class GPUs: ~2 s) and
~5-10 s of final evaluation and export: ~30 s; XLA rows add ~20 s of
compilation, worker rows ~10 s of rendezvous. 1 TensorFlow probe (~10 s) +
9 plain runs x 30 s + 2 XLA runs x 50 s + 2 worker runs x 40 s + writing
16,384 TFRecords (~10 s) = ~470 s. Two limits make it fit 10 minutes
whatever happens: `--timeout` (150 s) ends a hung run, and `--budget`
(560 s) caps the whole: a run gets at most the budget left, and checks
that no longer fit say "skipped: time budget".

`--smoke` (or no GPU) runs the same checks on logical CPUs with a tiny MLP
run (20 steps of 16 examples per device, N = 2) to show the script works;
checks that need GPUs say "skipped: no GPU".
"""

from collections.abc import Callable, Iterator
import math
import os
import sys
import tempfile
import time

from absl import flags

from benchmarks import gpu_runs
from benchmarks import gpu_table
from benchmarks.gpu_table import Row
from launch.distributed import devices

TRIVIAL_MODEL = "benchmarks.gpu_scaling:build_trivial"

# Apart from absl's global FLAGS, like launch.local's own flags.
_FLAGS = flags.FlagValues()
_SMOKE = flags.DEFINE_boolean("smoke", False, "Tiny runs on logical CPUs"
                              " (the default without GPUs).",
                              flag_values=_FLAGS)
_GPUS = flags.DEFINE_integer("gpus", None, "N: GPUs of the multi-GPU rows"
                             " (default: all visible).", flag_values=_FLAGS)
_MODEL = flags.DEFINE_string("model", None, "Network of the measured rows"
                             " (default cnn; the smoke: mlp).",
                             flag_values=_FLAGS)
_BATCH_PER_GPU = flags.DEFINE_integer(
    "batch_per_gpu", None, "Examples per GPU per step (default 256; the"
    " smoke: 16).", flag_values=_FLAGS)
_TRAIN_STEPS = flags.DEFINE_integer(
    "train_steps", None, "Steps per run (default 300; the smoke: 20).",
    flag_values=_FLAGS)
_STEPS_PER_LOOP = flags.DEFINE_integer(
    "steps_per_loop", None, "Steps per metrics row; the first row is left"
    " out (default 50; the smoke: 10).", flag_values=_FLAGS)
_TFRECORDS = flags.DEFINE_string(
    "tfrecords", None, "Your TFRecord files (a glob, schema.json beside"
    " them) for the input rows; default: written in --work_dir.",
    flag_values=_FLAGS)
_WORK_DIR = flags.DEFINE_string(
    "work_dir", None, "Where the runs' model dirs and logs go (default: a"
    " temporary directory, removed at the end).", flag_values=_FLAGS)
_TIMEOUT = flags.DEFINE_float("timeout", 150.0, "Seconds one run may take.",
                              flag_values=_FLAGS)
_BUDGET = flags.DEFINE_float("budget", 560.0, "Seconds for the whole table;"
                             " checks that no longer fit are skipped.",
                             flag_values=_FLAGS)


def build_trivial(input_shape, spec):
  """A linear model (`--model=benchmarks.gpu_scaling:build_trivial`).

  It does almost no work per example, so its examples/s is the ceiling set
  by the harness's per-step overhead and the input pipeline.
  """
  import keras  # pylint: disable=import-outside-toplevel
  inputs = keras.Input(shape=input_shape)
  outputs = spec.output_layer()(keras.layers.Flatten()(inputs))
  return keras.Model(inputs, outputs, name="trivial")


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


def main(argv: list[str]) -> int:
  try:
    _FLAGS(argv)
  except flags.Error as error:
    print(f"error: {error}.\n{_FLAGS.get_help()}", file=sys.stderr)
    return 2
  visible = devices.parse_visible_devices(
      os.environ.get(devices.VISIBLE_DEVICES),
      num_node_gpus=devices.count_node_gpus())
  smoke = _SMOKE.value or not visible
  count = _GPUS.value if _GPUS.value is not None else (
      2 if smoke else len(visible))
  if not smoke and not 1 <= count <= len(visible):
    print(f"error: --gpus={count} but {len(visible)} GPUs are visible;"
          f" choose 1 to {len(visible)}.", file=sys.stderr)
    return 2
  sizes = gpu_runs.Sizes(
      batch_per_device=_BATCH_PER_GPU.value or (16 if smoke else 256),
      train_steps=_TRAIN_STEPS.value or (20 if smoke else 300),
      steps_per_loop=_STEPS_PER_LOOP.value or (10 if smoke else 50))
  if smoke:
    print("Smoke: logical CPU devices stand in for GPUs; the numbers say"
          " nothing about GPUs.", flush=True)
  start = time.monotonic()

  def run_timeout() -> float:
    left = _BUDGET.value - (time.monotonic() - start)
    return max(10.0, min(_TIMEOUT.value, left))

  with tempfile.TemporaryDirectory(prefix="gpu_scaling-") as scratch:
    work_dir = _WORK_DIR.value or scratch
    os.makedirs(work_dir, exist_ok=True)
    checks = Checks(smoke=smoke, visible=visible[:count], count=count,
                    model=_MODEL.value or ("mlp" if smoke else "cnn"),
                    sizes=sizes, work_dir=work_dir,
                    tfrecords=_TFRECORDS.value, run_timeout=run_timeout)
    rows = gpu_table.run_checks(checks, budget=_BUDGET.value)
  failed = sum(row.verdict == "FAIL" for row in rows)
  print(f"{len(rows)} rows, {failed} FAIL, in"
        f" {time.monotonic() - start:.0f} s.", flush=True)
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
