"""The README's custom train_step example runs as written."""

import re
import subprocess
import sys

import pytest

from tests.processes import REPO_ROOT, harness_env


def readme_example() -> str:
  with open(f"{REPO_ROOT}/README.md", encoding="utf-8") as stream:
    readme = stream.read()
  match = re.search(r"<!-- custom-train-step-example -->\n```python\n(.*?)```",
                    readme, re.DOTALL)
  assert match, "the README lost its custom train_step example"
  return match.group(1)


@pytest.mark.slow
def test_custom_train_step_example_trains(tmp_path):
  script = tmp_path / "my_train.py"
  script.write_text(readme_example())
  result = subprocess.run(
      [sys.executable, str(script), f"--model_dir={tmp_path / 'run'}",
       "--train_steps=200", "--cpu_devices=2"],
      env=harness_env(), capture_output=True, text=True, timeout=180,
      check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  final = result.stdout.strip().splitlines()[-1]
  assert final.startswith("Final eval at step 200:")
  accuracy = float(final.split("accuracy ")[1].split()[0].rstrip(","))
  assert accuracy >= 0.9
