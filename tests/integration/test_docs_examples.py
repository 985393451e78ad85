"""The examples of the README and docs/ run as written (each in its own process).

Each test takes its blocks with `docs_example(page, name)`; paths under
/tmp/ move into the test's directory, and a shell example may get a shorter
run length appended (`--train_steps`), which is said where it happens.
`tests/docs/test_docs.py` fails if a marked example is taken by no test.
"""

import re
import shlex
import subprocess
import sys

import numpy as np
import pytest
from sklearn.datasets import load_digits

from tests import checkpoints
from tests.docs.examples import docs_example
from tests.processes import REPO_ROOT, harness_env


def _run(command: list[str], cwd, timeout: float = 300) -> str:
  result = subprocess.run(command, env=harness_env(), cwd=cwd,
                          capture_output=True, text=True, timeout=timeout,
                          check=False)
  assert result.returncode == 0, (result.stdout[-2000:]
                                  + result.stderr[-3000:])
  return result.stdout


def _with_model_dir(source: str, model_dir) -> str:
  """The example with its /tmp/... model_dir moved into the test's dir."""
  return re.sub(r'model_dir="/tmp/[^"]+"', f'model_dir="{model_dir}"', source)


def _command(shell: str, tmp_path, *extra: str) -> list[str]:
  """A one-command shell example as argv: /tmp/ moved, `python` this one."""
  words = shlex.split(shell.replace("\\\n", " ").replace("/tmp/",
                                                           f"{tmp_path}/"))
  assert words[0] == "python", shell
  return [sys.executable, *words[1:], *extra]


def _final_line(output: str) -> str:
  return output.strip().splitlines()[-1]


@pytest.mark.slow
def test_notebook_example(tmp_path):
  script = tmp_path / "notebook.py"
  script.write_text(_with_model_dir(docs_example("README.md", "fit-notebook"),
                                    tmp_path / "run"))
  output = _run([sys.executable, str(script)], tmp_path)
  logs = eval(output.splitlines()[0])  # pylint: disable=eval-used
  assert logs["examples"] == 360 and logs["accuracy"] > 0.85
  assert (tmp_path / "run" / "export").is_dir()


@pytest.mark.slow
def test_first_run_then_predictions_from_its_export(tmp_path):
  """The README's first command without its install, 50 steps; then predict."""
  first = docs_example("README.md", "first-run").strip()
  launch_part = first.split(" && ")[-1]
  output = _run(_command(launch_part, tmp_path, "--train_steps=50"), tmp_path)
  assert _final_line(output).startswith("Final eval at step 50:")
  digits = load_digits()
  raw = digits.images[:20, :, :, np.newaxis].astype(np.uint8)  # 0..16.
  np.save(tmp_path / "features.npy", raw)
  output = _run(_command(docs_example("docs/files-and-tensorboard.md",
                                      "predict-cli"), tmp_path), tmp_path)
  assert "Wrote 20 predictions" in output
  predictions = np.load(tmp_path / "predictions.npy")
  classes = np.load(tmp_path / "predictions.classes.npy")
  np.testing.assert_array_equal(classes, predictions.argmax(axis=1))
  script = tmp_path / "predict.py"
  script.write_text(docs_example("docs/files-and-tensorboard.md",
                                 "predict-python").replace(
                                     "/tmp/", f"{tmp_path}/"))
  printed = _run([sys.executable, str(script)], tmp_path)  # numpy's print.
  sums = [float(number) for number in
          re.findall(r"\d+\.?\d*(?:e[-+]?\d+)?", printed)]
  np.testing.assert_allclose(sums, 1.0, atol=1e-5)
  assert len(sums) == 20


@pytest.mark.slow
def test_keras_idiom_example(tmp_path):
  script = tmp_path / "idiom.py"
  script.write_text(_with_model_dir(
      docs_example("docs/model-and-step.md", "keras-idiom"), tmp_path / "run"))
  accuracy = float(_run([sys.executable, str(script)], tmp_path).split()[-1])
  assert accuracy > 0.85


@pytest.mark.slow
def test_custom_train_step_example_trains(tmp_path):
  script = tmp_path / "my_train.py"
  script.write_text(docs_example("docs/model-and-step.md", "custom-train-step"))
  output = _run([sys.executable, str(script), f"--model_dir={tmp_path / 'run'}",
                 "--train_steps=200", "--cpu_devices=2"], tmp_path, timeout=180)
  final = _final_line(output)
  assert final.startswith("Final eval at step 200:")
  accuracy = float(final.split("accuracy ")[1].split()[0].rstrip(","))
  assert accuracy >= 0.9


@pytest.mark.slow
def test_builder_example_plain_and_compiled(tmp_path):
  """my_models.py as written; its own first line says how to run it."""
  source = docs_example("docs/model-and-step.md", "my-models")
  (tmp_path / "my_models.py").write_text(source)
  command = source.splitlines()[0].split("— ", 1)[1]
  output = _run(_command(command, tmp_path, "--train_steps=50"), tmp_path)
  assert _final_line(output).startswith("Final eval at step 50:")
  compiled = command.replace("my_models:build", "my_models:build_compiled")
  compiled = compiled.replace("/tmp/mine", "/tmp/mine-compiled")
  output = _run(_command(compiled, tmp_path, "--train_steps=50"), tmp_path)
  assert "top3" in _final_line(output)


@pytest.mark.slow
def test_two_head_example(tmp_path):
  command = docs_example("docs/model-and-step.md", "two-head")
  output = _run(_command(command, tmp_path, "--train_steps=50"), tmp_path)
  final = _final_line(output)
  assert final.startswith("Final eval at step 50:")
  assert "digit_accuracy" in final and "large_auc" in final


@pytest.mark.slow
def test_script_on_two_workers_matches_one_process(tmp_path):
  script = tmp_path / "my_train.py"
  script.write_text(docs_example("docs/multi-worker-and-clusters.md",
                                 "script-on-workers"))
  command = docs_example("README.md", "two-workers")
  assert command == docs_example("docs/multi-worker-and-clusters.md",
                                 "two-workers")
  steps = "--train_steps=100"
  one = _run([sys.executable, str(script), f"--model_dir={tmp_path / 'one'}",
              steps, "--cpu_devices=2"], tmp_path)
  argv = [str(script) if word == "my_train.py" else word
          for word in _command(command, tmp_path, steps)]
  two = _run(argv, REPO_ROOT)
  assert "eval accuracy" in one
  assert "[worker:0] eval accuracy" in two and "[worker:1] eval accuracy" in two
  assert checkpoints.max_checkpoint_difference(
      tmp_path / "one" / "checkpoints",
      tmp_path / "two-workers" / "checkpoints") <= 1e-5


@pytest.mark.slow
def test_your_data_example_then_its_csv_from_the_command_line(tmp_path):
  source = docs_example("docs/data.md", "your-data").replace(
      "/tmp/", f"{tmp_path}/")
  script = tmp_path / "data.py"
  script.write_text(source)
  lines = _run([sys.executable, str(script)], tmp_path).splitlines()
  accuracies = dict(line.split() for line in lines
                    if line.startswith(("csv ", "images ")))
  assert float(accuracies["csv"]) >= 0.95
  assert float(accuracies["images"]) >= 0.95
  output = _run(_command(docs_example("docs/data.md", "cancer-cli"), tmp_path,
                         "--train_steps=300"), tmp_path)
  final = _final_line(output)
  assert final.startswith("Final eval at step 300:")
  assert float(final.split("accuracy ")[1].split()[0].rstrip(",")) >= 0.9
