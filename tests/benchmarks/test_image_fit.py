"""benchmarks/image_fit.py runs end to end (smoke) and reports every variant."""

import json
import os
import subprocess
import sys

import pytest

from benchmarks import image_fit
from tests.processes import REPO_ROOT, harness_env


def test_written_folder_is_what_keras_reads(tmp_path):
  import keras
  directory = str(tmp_path / "images")
  image_fit.write_images(directory, 30)
  assert sorted(os.listdir(directory)) == [f"c{i}" for i in range(10)]
  dataset = keras.utils.image_dataset_from_directory(
      directory, image_size=(32, 32), batch_size=30, verbose=False)
  images, labels = next(iter(dataset))
  assert images.shape == (30, 32, 32, 3) and sorted(labels.numpy()) == sorted(
      [i % 10 for i in range(30)])


@pytest.mark.slow
def test_smoke_run_reports_every_variant(tmp_path):
  output = tmp_path / "result.json"
  result = subprocess.run(
      [sys.executable, "-m", "benchmarks.image_fit", "--smoke",
       f"--work_dir={tmp_path}", f"--output={output}"], env=harness_env(),
      cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
      check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "| files | harness ex/s |" in result.stdout
  runs = json.loads(output.read_text())["600"]
  assert set(runs) == set(image_fit.VARIANTS)
  for variant, (run,) in runs.items():
    assert run["examples_per_s"] > 0, variant
