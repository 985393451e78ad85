"""validation_split: seeded, stratified for files; the last rows for arrays."""

import csv

import numpy as np
import pytest
import tensorflow as tf

from datasets import DataError, from_arrays, from_csv, from_image_directory
from datasets import splits
from tests.datasets.helpers import (assert_steps_equal, eval_batches,
                                    global_steps)


def write_class_sorted_csv(path, counts=(50, 50, 50), seed=0):
  """An iris-like CSV sorted by class, as such files usually come."""
  rng = np.random.default_rng(seed)
  with open(path, "w", newline="") as stream:
    writer = csv.writer(stream)
    writer.writerow(["sepal_length", "sepal_width", "petal_length",
                     "species"])
    for label, count in enumerate(counts):
      for _ in range(count):
        writer.writerow([*np.round(rng.normal(label, 0.3, 3), 3), label])
  return str(path)


def write_image_folders(root, counts):
  """Class folders of mixed PNG and JPEG files, pixel value = class * 60."""
  for label, (name, count) in enumerate(counts.items()):
    (root / name).mkdir(parents=True)
    for index in range(count):
      pixels = tf.fill((5, 4, 3), tf.constant(label * 60 + 20, tf.uint8))
      if index % 2:
        tf.io.write_file(str(root / name / f"{index:03d}.png"),
                         tf.io.encode_png(pixels))
      else:
        tf.io.write_file(str(root / name / f"{index:03d}.jpg"),
                         tf.io.encode_jpeg(pixels, quality=100))
  return str(root)


def labels_of(source):
  _, (batches,) = eval_batches(source, global_batch_size=16, padded=False)
  return np.concatenate([labels for _, labels in batches])


def test_class_sorted_csv_keeps_every_class_share(tmp_path):
  path = write_class_sorted_csv(tmp_path / "iris.csv")
  train, held_out = from_csv(path, label_column="species").split(0.2, seed=3)
  assert (train.num_examples, held_out.num_examples) == (120, 30)
  assert np.bincount(labels_of(held_out)).tolist() == [10, 10, 10]
  assert np.bincount(labels_of(train)).tolist() == [40, 40, 40]
  assert held_out.description.startswith(
      "30 held-out examples (3 of 3 classes) from 150 rows")
  assert train.description.startswith(
      "120 training examples (3 of 3 classes) from 150 rows")
  assert "validation_split=0.2 stratified by class, seed 3" in (
      train.description)
  assert train.warnings == held_out.warnings == ()
  # Standardization comes from the training part only.
  np.testing.assert_allclose(
      train.standardization[0], train.data.features.mean(0), rtol=1e-5)


def test_split_is_seeded_deterministic_and_resumes_exactly(tmp_path):
  path = write_class_sorted_csv(tmp_path / "iris.csv")
  source = from_csv(path, label_column="species")
  first, again, other = (source.split(0.2, seed=seed)[1].data.labels
                         for seed in (1, 1, 2))
  rows = lambda seed: splits.split_rows(
      source.data.labels, 150, 0.2, rule="seeded", seed=seed).held_out_rows
  np.testing.assert_array_equal(rows(1), rows(1))
  assert not np.array_equal(rows(1), rows(2))
  np.testing.assert_array_equal(first, again)
  assert sorted(first.tolist()) == sorted(other.tolist())  # Same shares.
  # A part rebuilt from the same data and seed serves the same batches:
  # what a resumed run, or another worker, computes.
  train = source.split(0.2, seed=1)[0]
  rebuilt = from_csv(path, label_column="species").split(0.2, seed=1)[0]
  full = global_steps(train, 6, global_batch_size=8)
  assert_steps_equal(global_steps(rebuilt, 3, global_batch_size=8,
                                  start_step=3), full[3:])
  assert_steps_equal(global_steps(rebuilt, 6, global_batch_size=8,
                                  pipelines=2, replicas=4), full)


def test_image_folders_split_by_class_not_by_position(tmp_path):
  root = write_image_folders(tmp_path / "images",
                             {"one": 60, "two": 60, "zero": 60})
  source = from_image_directory(root, image_size=(4, 4))
  train, held_out = source.split(0.2, seed=0)
  held_labels = labels_of(held_out)
  assert np.bincount(held_labels, minlength=3).tolist() == [12, 12, 12]
  assert np.bincount(labels_of(train), minlength=3).tolist() == [48, 48, 48]
  assert held_out.class_names == ["one", "two", "zero"]
  assert held_out.num_classes == train.num_classes == 3
  assert held_out.description.startswith(
      "36 held-out examples (3 of 3 classes) from 180 images")
  # The held-out files are drawn from each folder, not its last files.
  held_paths = set(held_out.data.paths.tolist())
  assert not held_paths <= set(source.data.paths[-36:].tolist())
  assert not held_paths & set(train.data.paths.tolist())


def test_a_class_too_small_for_both_parts_is_a_warning(tmp_path):
  root = write_image_folders(tmp_path / "images",
                             {"big": 20, "rare": 2, "small": 8})
  train, held_out = from_image_directory(root, image_size=(4, 4)).split(
      0.2, seed=0)
  assert np.bincount(labels_of(held_out), minlength=3).tolist() == [4, 0, 2]
  assert held_out.description.startswith(
      "6 held-out examples (2 of 3 classes)")
  assert train.description.startswith("24 training examples (3 of 3")
  warning, = held_out.warnings
  assert warning == (
      "validation_split=0.2 leaves 1 of 3 classes out of the held-out part"
      " ('rare' (2 examples)), so its metrics do not cover them; give these"
      " classes more examples, or give eval data of your own.")


def test_a_single_example_stays_in_training(tmp_path):
  # Largest remainders would hand the lone example to evaluation.
  labels = np.array([0] * 9 + [1])
  split = splits.split_rows(labels, 10, 0.25, rule="seeded", seed=0)
  assert labels[split.train_rows].tolist().count(1) == 1
  assert len(split.held_out_rows) == 2 and split.held_out_classes == 1


def test_float_targets_are_a_seeded_shuffle(tmp_path):
  path = tmp_path / "house.csv"
  with open(path, "w", newline="") as stream:
    writer = csv.writer(stream)
    writer.writerow(["rooms", "price"])
    for index in range(100):  # Sorted by price, as exports often are.
      writer.writerow([index % 7, 100.5 + index])
  source = from_csv(str(path), label_column="price")
  train, held_out = source.split(0.2, seed=0)
  held = labels_of(held_out)
  assert len(held) == 20 and held.dtype == np.float32
  assert held.min() < 150 < held.max()  # Not the 20 most expensive.
  assert "shuffled with seed 0" in held_out.description
  assert "classes" not in held_out.description.split("(validation")[0]
  assert train.warnings == ()
  np.testing.assert_array_equal(held, labels_of(source.split(0.2, seed=0)[1]))


def test_arrays_keep_keras_last_fraction_and_warn():
  labels = np.repeat(np.arange(3), 10)  # Sorted by class.
  source = from_arrays(np.arange(30.0)[:, None], labels)
  train, held_out = source.split(0.2, seed=5)
  assert labels_of(held_out).tolist() == [2] * 6
  assert "the last 6 rows, before shuffling, as Keras's fit" in (
      held_out.description)
  assert held_out.description.startswith("6 held-out examples (1 of 3")
  assert held_out.warnings == train.warnings
  assert held_out.warnings[0].startswith(
      "validation_split=0.2 leaves 2 of 3 classes out of the held-out part"
      " (class 0 (10 examples), class 1 (10 examples))")


def test_named_outputs_and_one_hot_labels_are_checked_per_class():
  x = np.zeros((20, 2), np.float32)
  one_hot = np.eye(2, dtype=np.float32)[np.repeat([0, 1], 10)]
  _, held_out = from_arrays(x, one_hot).split(0.2)
  assert "held-out part (class 0 (10 examples))" in held_out.warnings[0]
  _, held_out = from_arrays(x, {"kind": np.repeat([0, 1], 10),
                                "size": np.linspace(0, 1, 20)}).split(0.2)
  assert "classes of output 'kind' out of the held-out part" in (
      held_out.warnings[0])


def test_empty_parts_are_refused(tmp_path):
  path = write_class_sorted_csv(tmp_path / "iris.csv", counts=(3, 3))
  source = from_csv(path, label_column="species")
  with pytest.raises(DataError, match="empty train or eval part"):
    source.split(0.01, seed=0)
