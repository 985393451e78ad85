"""The harness against a hand-written loop, Orbit and Keras `fit`: examples/s.

  python -m benchmarks.throughput              # MLP and CNN, 1 and 2 replicas
  python -m benchmarks.throughput --models=mlp --replicas=2 --rounds=5

Every measurement runs in a fresh process (one strategy per process, and
peak RSS per variant), and the variants are interleaved round by round so
that machine noise hits them alike. Per (model, replicas) it reports:

* examples/s of the harness's loop (`Runner.train`, `--steps_per_loop`
  steps per `tf.function` call), of a hand-written fused loop
  (`for _ in tf.range(K): strategy.run(step, (next(it),))` over a plain
  `tf.data` pipeline), of Orbit's `StandardTrainer` (Model Garden's loop
  library, same K; measured when `orbit` is importable: `pip install
  --no-deps tf-models-no-deps==2.19.0 tf-keras==2.21.0`), and of Keras 3
  `model.fit` with default settings;
* the input stall: 1 - (time per step fed from the pipeline / fed from one
  fixed in-memory batch), for the harness;
* startup: seconds from process start to the end of the first step;
* peak RSS of each variant's process.

Warm-up (tracing, the first loop) is excluded from examples/s.
"""

import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import time

from absl import app
from absl import flags

_MODELS = flags.DEFINE_list("models", ["mlp", "cnn"], "Networks to measure.")
_REPLICAS = flags.DEFINE_list("replicas", ["1", "2"],
                              "Logical CPU replica counts to measure.")
_GLOBAL_BATCH = flags.DEFINE_integer("global_batch_size", 256, "Global batch.")
_ROUNDS = flags.DEFINE_integer("rounds", 3, "Interleaved rounds (median).")
_LOOP_STEPS = flags.DEFINE_integer(
    "loop_steps", 50, "Steps per compiled call (harness and fused loop).")
_MEASURED_LOOPS = flags.DEFINE_integer(
    "measured_loops", 4, "Timed calls per measurement (MLP; the CNN, ~80x"
    " slower per example on a CPU, uses a fifth of the steps).")
_JIT = flags.DEFINE_boolean("jit_compile", False, "XLA for the harness step.")
_PRECISION = flags.DEFINE_string("mixed_precision", "float32",
                                 "Dtype policy of the harness variant.")
_OUTPUT = flags.DEFINE_string("output", None, "Also write results as JSON.")
# Internal: one measurement in this process.
_VARIANT = flags.DEFINE_string("variant", None, "Internal.")
_MODEL = flags.DEFINE_string("model", "mlp", "Internal.")
_NUM_REPLICAS = flags.DEFINE_integer("num_replicas", 1, "Internal.")

ALL_VARIANTS = ("harness", "fused", "orbit", "keras_fit")

# `benchmarks` is not installed: measurement processes find it from here.
_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _steps(model: str) -> tuple[int, int]:
  """(steps per call, timed calls): CNN steps cost ~80x an MLP step."""
  if model == "cnn":
    return max(1, _LOOP_STEPS.value // 5), _MEASURED_LOOPS.value
  return _LOOP_STEPS.value, _MEASURED_LOOPS.value


def _timed(function, calls: int) -> float:
  start = time.perf_counter()
  for _ in range(calls):
    function()
  return time.perf_counter() - start


def _measure(variant: str, model_name: str, num_replicas: int) -> dict:
  """Runs one variant in this process; returns its numbers."""
  from benchmarks import throughput_variants  # Imports TensorFlow.
  steps, calls = _steps(model_name)
  setup = throughput_variants.SETUPS[variant](
      model_name=model_name, num_replicas=num_replicas,
      global_batch_size=_GLOBAL_BATCH.value, steps_per_call=steps,
      jit_compile=_JIT.value, mixed_precision=_PRECISION.value)
  setup.first_step()  # Traces; its end is the end of the first step.
  startup = time.time() - float(os.environ["BENCH_START"])
  setup.run()  # Warm-up call at full length.
  seconds = _timed(setup.run, calls)
  result = {"variant": variant, "model": model_name,
            "replicas": num_replicas, "startup_s": startup,
            "examples_per_sec": calls * steps * _GLOBAL_BATCH.value / seconds}
  if setup.run_fixed is not None:
    setup.run_fixed()
    fixed_seconds = _timed(setup.run_fixed, calls)
    result["input_stall"] = max(0.0, 1 - fixed_seconds / seconds)
  result["peak_rss_mb"] = resource.getrusage(
      resource.RUSAGE_SELF).ru_maxrss / 1024
  return result


def _spawn(variant: str, model: str, replicas: int) -> dict:
  env = dict(os.environ, BENCH_START=repr(time.time()))
  env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  output = subprocess.run(
      [sys.executable, "-m", "benchmarks.throughput", f"--variant={variant}",
       f"--model={model}", f"--num_replicas={replicas}",
       f"--global_batch_size={_GLOBAL_BATCH.value}",
       f"--loop_steps={_LOOP_STEPS.value}",
       f"--measured_loops={_MEASURED_LOOPS.value}",
       f"--jit_compile={_JIT.value}",
       f"--mixed_precision={_PRECISION.value}"],
      env=env, cwd=_REPO_ROOT, capture_output=True, text=True, check=False,
      timeout=1800)
  if output.returncode != 0:
    tail = "\n".join(output.stderr.strip().splitlines()[-20:])
    print(f"error: the {variant} measurement ({model} x{replicas}) exited"
          f" with status {output.returncode}; its last lines:\n{tail}",
          file=sys.stderr, flush=True)
    sys.exit(1)
  return json.loads(output.stdout.strip().splitlines()[-1])


def _variants() -> tuple[str, ...]:
  if importlib.util.find_spec("orbit") is None:
    print("note: orbit is not installed; its variant is skipped (pip install"
          " --no-deps tf-models-no-deps==2.19.0 tf-keras==2.21.0).",
          file=sys.stderr, flush=True)
    return tuple(v for v in ALL_VARIANTS if v != "orbit")
  return ALL_VARIANTS


def _summarise(results: list[dict], variants: tuple[str, ...]) -> list[dict]:
  rows = []
  keys = sorted({(r["model"], r["replicas"]) for r in results})
  for model, replicas in keys:
    row = {"model": model, "replicas": replicas}
    for variant in variants:
      runs = [r for r in results if (r["model"], r["replicas"], r["variant"])
              == (model, replicas, variant)]
      row[variant] = statistics.median(r["examples_per_sec"] for r in runs)
      row[f"{variant}_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
      row[f"{variant}_startup_s"] = statistics.median(r["startup_s"]
                                                      for r in runs)
      if variant == "harness":
        row["input_stall"] = statistics.median(r["input_stall"] for r in runs)
    row["vs_fused"] = row["harness"] / row["fused"]
    row["vs_fit"] = row["harness"] / row["keras_fit"]
    row["vs_orbit"] = row["harness"] / row["orbit"] if "orbit" in row else None
    row["rss_vs_fused"] = row["harness_rss_mb"] / row["fused_rss_mb"]
    rows.append(row)
  return rows


def _print_table(rows: list[dict]) -> None:
  print("| model | replicas | harness ex/s | fused ex/s | Orbit ex/s |"
        " fit ex/s | harness/fused | harness/Orbit | harness/fit |"
        " input stall | startup s (harness) | peak RSS MB harness/fused |")
  print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
        " --- |")
  for r in rows:
    orbit, vs_orbit = "-", "-"
    if r["vs_orbit"] is not None:
      orbit, vs_orbit = f"{r['orbit']:,.0f}", f"{r['vs_orbit']:.3f}"
    print(f"| {r['model']} | {r['replicas']} | {r['harness']:,.0f} |"
          f" {r['fused']:,.0f} | {orbit} | {r['keras_fit']:,.0f} |"
          f" {r['vs_fused']:.3f} | {vs_orbit} |"
          f" {r['vs_fit']:.1f}x | {100 * r['input_stall']:.1f} % |"
          f" {r['harness_startup_s']:.1f} | {r['harness_rss_mb']:.0f} /"
          f" {r['fused_rss_mb']:.0f} ({r['rss_vs_fused']:.2f}x) |")


def main(argv: list[str]) -> None:
  del argv
  if _VARIANT.value:  # A measurement process.
    print(json.dumps(_measure(_VARIANT.value, _MODEL.value,
                              _NUM_REPLICAS.value)))
    return
  variants = _variants()
  results = []
  for round_index in range(_ROUNDS.value):
    for model in _MODELS.value:
      for replicas in (int(r) for r in _REPLICAS.value):
        for variant in variants:
          result = _spawn(variant, model, replicas)
          print(f"round {round_index + 1}: {model} x{replicas} {variant}:"
                f" {result['examples_per_sec']:,.0f} examples/s",
                file=sys.stderr, flush=True)
          results.append(result)
  rows = _summarise(results, variants)
  _print_table(rows)
  if _OUTPUT.value:
    with open(_OUTPUT.value, "w", encoding="utf-8") as stream:
      json.dump({"rows": rows, "runs": results}, stream, indent=2)


if __name__ == "__main__":
  app.run(main)
