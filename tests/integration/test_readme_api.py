"""The README's library examples run as written (each in its own process)."""

import re
import subprocess
import sys

import pytest

from tests import checkpoints
from tests.processes import REPO_ROOT, harness_env


def readme_example(name: str) -> str:
  with open(f"{REPO_ROOT}/README.md", encoding="utf-8") as stream:
    readme = stream.read()
  match = re.search(rf"<!-- example: {name} -->\n```python\n(.*?)```", readme,
                    re.DOTALL)
  assert match, f"the README lost its {name} example"
  return match.group(1)


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


@pytest.mark.slow
def test_notebook_example(tmp_path):
  script = tmp_path / "notebook.py"
  script.write_text(_with_model_dir(readme_example("fit-notebook"),
                                    tmp_path / "run"))
  output = _run([sys.executable, str(script)], tmp_path)
  logs = eval(output.splitlines()[0])  # pylint: disable=eval-used
  assert logs["examples"] == 360 and logs["accuracy"] > 0.85
  assert (tmp_path / "run" / "export").is_dir()


@pytest.mark.slow
def test_keras_idiom_example(tmp_path):
  script = tmp_path / "idiom.py"
  script.write_text(_with_model_dir(readme_example("keras-idiom"),
                                    tmp_path / "run"))
  accuracy = float(_run([sys.executable, str(script)], tmp_path).split()[-1])
  assert accuracy > 0.85


@pytest.mark.slow
def test_script_on_two_workers_matches_one_process(tmp_path):
  script = tmp_path / "my_train.py"
  script.write_text(readme_example("script-on-workers"))
  steps = "--train_steps=100"
  one = _run([sys.executable, str(script), f"--model_dir={tmp_path / 'one'}",
              steps, "--cpu_devices=2"], tmp_path)
  two = _run([sys.executable, "-m", "launch.local", "--workers=2",
              str(script), f"--model_dir={tmp_path / 'two'}", steps],
             REPO_ROOT)
  assert "eval accuracy" in one
  assert "[worker:0] eval accuracy" in two and "[worker:1] eval accuracy" in two
  assert checkpoints.max_checkpoint_difference(
      tmp_path / "one" / "checkpoints", tmp_path / "two" / "checkpoints") <= 1e-5


@pytest.mark.slow
def test_your_data_example(tmp_path):
  source = readme_example("your-data").replace("/tmp/", f"{tmp_path}/")
  script = tmp_path / "data.py"
  script.write_text(source)
  lines = _run([sys.executable, str(script)], tmp_path).splitlines()
  accuracies = dict(line.split() for line in lines
                    if line.startswith(("csv ", "images ")))
  assert float(accuracies["csv"]) >= 0.95
  assert float(accuracies["images"]) >= 0.95
