"""A user's image folders and CSVs end to end: validation_split and bad files.

The run's log states each part's examples and classes and warns about a
class a split leaves out; a corrupt image is named in one sentence, or
skipped and counted with skip_unreadable, and training runs on the rest.
"""

import contextlib
import csv
import json
import logging

import numpy as np
import pytest
import tensorflow as tf

from datasets import from_csv, from_image_directory
from launch import fit
from launch.errors import ConfigError
from tests.processes import launch_in_this_process


@contextlib.contextmanager
def harness_log():
  """The messages the harness logs (absl's logger) while inside."""
  messages = []
  handler = logging.Handler()
  handler.emit = lambda record: messages.append(record.getMessage())
  logger = logging.getLogger("absl")
  logger.addHandler(handler)
  try:
    yield messages
  finally:
    logger.removeHandler(handler)


def write_folders(root, per_class=12):
  """Three class folders of mixed PNG/JPEG files, learnable by brightness."""
  rng = np.random.default_rng(0)
  for label, name in enumerate(["one", "two", "zero"]):
    (root / name).mkdir(parents=True)
    for index in range(per_class):
      pixels = np.clip(rng.normal(40 + 80 * label, 20, (8, 8, 3)), 0, 255)
      pixels = tf.constant(pixels.astype(np.uint8))
      if index % 2:
        data = tf.io.encode_png(pixels)
        tf.io.write_file(str(root / name / f"{index:02d}.png"), data)
      else:
        data = tf.io.encode_jpeg(pixels, quality=95)
        tf.io.write_file(str(root / name / f"{index:02d}.jpg"), data)
  return root


def _eval_rows(model_dir):
  rows = [json.loads(line) for line in
          (model_dir / "metrics.jsonl").read_text().splitlines()]
  return [row for row in rows if row["split"] == "eval"]


@pytest.mark.slow
def test_command_line_names_a_corrupt_file_and_skips_it_on_request(tmp_path):
  images = write_folders(tmp_path / "images")
  (images / "two" / "scan.jpg").write_text("this is a text file\n")
  (images / "zero" / "cut.jpg").write_bytes(
      (images / "zero" / "00.jpg").read_bytes()[:200])
  args = [f"--train_data={images}", "--image_size=8,8",
          "--validation_split=0.25", "--model=cnn", "--train_steps=6",
          "--steps_per_loop=3", "--global_batch_size=9", "--progress=none"]
  code, errors = launch_in_this_process(
      [*args, f"--model_dir={tmp_path / 'refused'}"])
  assert code == 2 and len(errors) == 1
  assert errors[0] == (
      f"error: 2 of the 38 image files under {images} cannot be decoded:"
      f" {images / 'two' / 'scan.jpg'} (it is no PNG, JPEG, GIF or BMP"
      f" image but starts with b'this is '), {images / 'zero' / 'cut.jpg'}"
      " (it is a truncated JPEG, without its end-of-image marker); remove"
      " or replace them, or pass --skip_unreadable=True to skip them.")
  assert not (tmp_path / "refused").exists()

  with harness_log() as messages:
    code, errors = launch_in_this_process(
        [*args, "--skip_unreadable", f"--model_dir={tmp_path / 'run'}"])
  assert (code, errors) == (0, [])
  said = "\n".join(messages)
  assert ("Train data: 27 training examples (3 of 3 classes) from 36 images"
          " resized to 8x8x3 (pixels scaled by 1/255), 3 classes (one, two, zero), 2"
          " unreadable files skipped (validation_split=0.25 stratified by"
          " class, seed 0).") in said
  assert "Eval data: 9 held-out examples (3 of 3 classes)" in said
  assert said.count("skipped 2 unreadable image files under") == 1
  assert _eval_rows(tmp_path / "run")[-1]["examples"] == 9


def _write_iris_like(path, counts):
  rng = np.random.default_rng(1)
  with open(path, "w", newline="") as stream:
    writer = csv.writer(stream)
    writer.writerow(["a", "b", "species"])
    for label, count in enumerate(counts):  # Sorted by class.
      for _ in range(count):
        writer.writerow([*np.round(rng.normal(label, 0.2, 2), 3), label])


def test_a_class_left_out_by_the_split_is_a_warning_in_the_log(tmp_path):
  path = tmp_path / "flowers.csv"
  _write_iris_like(path, (40, 40, 2))
  with harness_log() as messages:
    result = fit(None, from_csv(str(path), label_column="species"),
                 model="mlp", validation_split=0.2, seed=4,
                 model_dir=str(tmp_path / "run"), global_batch_size=16,
                 train_steps=4, steps_per_loop=2, progress="none")
  said = "\n".join(messages)
  assert ("Eval data: 16 held-out examples (2 of 3 classes) from 82 rows"
          in said)
  assert ("validation_split=0.2 leaves 1 of 3 classes out of the held-out"
          " part (class 2 (2 examples)), so its metrics do not cover them")\
      in said
  assert result.logs["examples"] == 16


def test_fit_names_an_image_that_fails_inside_the_pipeline(tmp_path):
  images = write_folders(tmp_path / "images", per_class=6)
  damaged = bytearray((images / "one" / "01.png").read_bytes())
  damaged[16:24] = b"\0" * 8  # Zero width and height; both ends look whole.
  (images / "one" / "01.png").write_bytes(bytes(damaged))
  source = from_image_directory(str(images), image_size=(8, 8))
  with pytest.raises(ConfigError) as raised:
    fit(None, source, model="mlp", validation_split=0.25,
        model_dir=str(tmp_path / "run"), global_batch_size=6,
        train_steps=6, steps_per_loop=3, progress="none")
  message = str(raised.value)
  assert len(message.splitlines()) == 1
  assert message.startswith(f"the image file {images / 'one' / '01.png'}"
                            " cannot be read or decoded by TensorFlow (")
  assert message.endswith("); remove or replace it.")


@pytest.mark.slow
def test_resume_with_a_seeded_split_is_exact(tmp_path):
  from tests import checkpoints
  path = tmp_path / "flowers.csv"
  _write_iris_like(path, (30, 30, 30))
  common = dict(model="mlp", validation_split=0.2, seed=7,
                global_batch_size=16, steps_per_loop=10, deterministic=True,
                cpu_devices=2, progress="none")
  source = lambda: from_csv(str(path), label_column="species")
  fit(None, source(), model_dir=str(tmp_path / "straight"), train_steps=40,
      **common)
  fit(None, source(), model_dir=str(tmp_path / "resumed"), train_steps=20,
      **common)
  resumed = fit(None, source(), model_dir=str(tmp_path / "resumed"),
                train_steps=40, **common)
  assert resumed.step == 40 and resumed.logs["examples"] == 18
  assert checkpoints.max_checkpoint_difference(
      tmp_path / "straight" / "checkpoints",
      tmp_path / "resumed" / "checkpoints") == 0.0


@pytest.mark.slow
def test_two_workers_split_and_skip_alike(tmp_path):
  """Each worker lists, checks and splits on its own: the same parts."""
  from tests import checkpoints
  from tests.processes import run_launch, run_workers
  images = write_folders(tmp_path / "images", per_class=10)
  (images / "one" / "empty.png").write_bytes(b"")
  args = [f"--train_data={images}", "--image_size=8,8",
          "--validation_split=0.3", "--skip_unreadable", "--model=mlp",
          "--train_steps=20", "--steps_per_loop=10", "--global_batch_size=8",
          "--deterministic", "--progress=log", "--seed=3"]
  single = run_launch([*args, "--cpu_devices=2",
                       f"--model_dir={tmp_path / 'one'}"])
  assert single.returncode == 0, single.stderr[-2000:]
  workers = run_workers([*args, f"--model_dir={tmp_path / 'two'}"], 2)
  for worker in workers:
    assert worker.returncode == 0, worker.stdout[-2000:]
  assert "Eval data: 9 held-out examples (3 of 3 classes)" in (
      workers[0].stdout)
  assert checkpoints.max_checkpoint_difference(
      tmp_path / "one" / "checkpoints",
      tmp_path / "two" / "checkpoints") < 1e-5
