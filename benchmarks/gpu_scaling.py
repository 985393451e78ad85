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

import os
import sys
import tempfile
import time

from absl import flags

from benchmarks import gpu_checks
from benchmarks import gpu_runs
from benchmarks import gpu_table
from launch.distributed import devices

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
    checks = gpu_checks.Checks(smoke=smoke, visible=visible[:count], count=count,
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
