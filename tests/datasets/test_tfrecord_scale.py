"""TFRecords at scale: counts recorded beside the files; a streaming writer."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from datasets import from_csv, from_tfrecords, tfrecord, tfrecord_files
from datasets import tfrecord_inputs
from tests.datasets.helpers import eval_batches, global_steps
from tests.datasets.test_tfrecord_files import write_examples

SCHEMA = {"x": tf.io.FixedLenFeature([2], tf.float32)}


def refuse_reading(monkeypatch):
  """Makes any read of a record (or a header) fail the test."""
  def refuse(*args, **kwargs):
    raise AssertionError("the records were read again")
  monkeypatch.setattr(tfrecord_files, "read_records", refuse)
  monkeypatch.setattr(tfrecord_files, "count_records", refuse)


def test_counts_and_classes_are_recorded_once_and_trusted_while_unchanged(
    tmp_path, monkeypatch):
  write_examples(tmp_path / "a.tfrecord", [0, 4, 1])
  write_examples(tmp_path / "b.tfrecord", [2, 6])
  pattern = str(tmp_path / "*.tfrecord")
  first = from_tfrecords(pattern, features=SCHEMA, label="label")
  assert first.counts == [3, 2] and first.num_classes == 7
  book = json.loads((tmp_path / tfrecord_files.COUNTS_FILE).read_text())
  assert {name: (entry["records"], entry["largest"]) for name, entry
          in book["files"].items()} == {"a.tfrecord": (3, {"label": 4}),
                                        "b.tfrecord": (2, {"label": 6})}
  with monkeypatch.context() as patched:
    refuse_reading(patched)
    again = from_tfrecords(pattern, features=SCHEMA, label="label")
    assert again.counts == [3, 2] and again.num_classes == 7
    by_parse_fn = from_tfrecords(pattern, parse_fn=lambda r: (r, 0))
    assert by_parse_fn.num_examples == 5
  # A changed file is read again (and only that one); the rest is trusted.
  write_examples(tmp_path / "b.tfrecord", [2, 6, 9, 1])
  changed = from_tfrecords(pattern, features=SCHEMA, label="label")
  assert changed.counts == [3, 4] and changed.num_classes == 10
  assert len(global_steps(changed, 1, global_batch_size=7)[0][1]) == 7


def test_an_unwritable_folder_counts_each_time_and_says_so(tmp_path,
                                                           monkeypatch):
  write_examples(tmp_path / "a.tfrecord", [0, 1])
  monkeypatch.setattr(tfrecord_files, "write_counts_book",
                      lambda directory, files: False)
  source = from_tfrecords(str(tmp_path / "a.tfrecord"), features=SCHEMA,
                          label="label")
  assert source.counts == [2]
  assert not (tmp_path / tfrecord_files.COUNTS_FILE).exists()
  assert source.warnings == (
      f"{tmp_path} is not writable, so the records of its TFRecord files are"
      f" counted at every start; write {tfrecord_files.COUNTS_FILE} there once"
      " (python -m launch.write_tfrecords does) to start at once.",)


def test_a_damaged_counts_file_is_ignored(tmp_path):
  write_examples(tmp_path / "a.tfrecord", [0, 3])
  (tmp_path / tfrecord_files.COUNTS_FILE).write_text("{not json")
  source = from_tfrecords(str(tmp_path / "a.tfrecord"), features=SCHEMA,
                          label="label")
  assert source.counts == [2] and source.num_classes == 4


def read_back(directory, split):
  """(features, labels) of a written split, rows sorted (files interleave)."""
  source = tfrecord.load_sources(str(directory), shuffle=False)[
      0 if split == "train" else 1]
  _, pipelines = eval_batches(source, global_batch_size=source.num_examples,
                              padded=False)
  return sort_rows(*pipelines[0][0])


def sort_rows(x, y):
  flat = np.concatenate([x.reshape(len(x), -1), y.reshape(-1, 1)], axis=1)
  order = np.lexsort(flat.T[::-1])
  return x[order], y[order]


def test_npz_is_written_a_chunk_at_a_time_and_reads_back(tmp_path,
                                                         monkeypatch):
  rng = np.random.default_rng(0)
  arrays = {"x_train": rng.integers(0, 256, (300, 4, 4), dtype=np.uint8),
            "y_train": rng.integers(0, 5, 300),
            "x_test": rng.integers(0, 256, (40, 4, 4), dtype=np.uint8),
            "y_test": rng.integers(0, 5, 40)}
  np.savez(tmp_path / "d.npz", **arrays)
  monkeypatch.setattr(tfrecord_inputs, "_CHUNK_BYTES", 16 * 50)
  rows = tfrecord_inputs.npz_rows(str(tmp_path / "d.npz"), "x_train",
                                  "y_train")
  assert [len(y) for _, y in rows.chunks()] == [50] * 6  # Never all of x.
  written = tfrecord.write_dataset(
      str(tmp_path / "out"), {"train": rows, "eval": tfrecord_inputs.npz_rows(
          str(tmp_path / "d.npz"), "x_test", "y_test")},
      num_shards={"train": 4, "eval": 1})
  assert written.num_classes == 5
  assert [n for _, n in written.files["train"]] == [75] * 4
  x, y = read_back(tmp_path / "out", "train")
  ex, ey = sort_rows(arrays["x_train"].astype(np.float32), arrays["y_train"])
  np.testing.assert_array_equal(x, ex)
  np.testing.assert_array_equal(y, ey)
  # The files also start at once through from_tfrecords.
  book = json.loads((tmp_path / "out" / tfrecord_files.COUNTS_FILE)
                    .read_text())["files"]
  assert sorted(entry["records"] for entry in book.values()) == [40] + [75] * 4


def test_csv_and_image_folders_are_written_as_read_for_training(tmp_path):
  rows = [f"{i},{i / 4},{['cat', 'dog'][i % 2]}" for i in range(30)]
  (tmp_path / "train.csv").write_text("a,b,label\n" + "\n".join(rows) + "\n")
  train, names = tfrecord_inputs.csv_rows([str(tmp_path / "train.csv")],
                                          "label", str(tmp_path / "s"))
  assert names == ["cat", "dog"] and train.feature_dtype == np.float32
  tfrecord.write_dataset(str(tmp_path / "csv"), {"train": train,
                                                 "eval": train},
                         num_shards={"train": 2, "eval": 1},
                         class_names=names)
  expected = from_csv(str(tmp_path / "train.csv"), label_column="label",
                      shuffle=False)
  (ex, ey), = global_steps(expected, 1, global_batch_size=30)
  ex, ey = sort_rows(ex, ey)
  x, y = read_back(tmp_path / "csv", "train")
  np.testing.assert_array_equal(x, ex)
  np.testing.assert_array_equal(y, ey)
  rng = np.random.default_rng(1)
  pixels = rng.integers(0, 256, (4, 6, 6, 3), dtype=np.uint8)
  for index, image in enumerate(pixels):
    folder = tmp_path / "images" / ["ants", "bees"][index % 2]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{index}.png").write_bytes(tf.io.encode_png(image).numpy())
  images, names = tfrecord_inputs.image_rows(
      str(tmp_path / "images"), image_size=(6, 6), channels=3)
  assert names == ["ants", "bees"] and images.num_rows == 4
  (x, y), = list(images.chunks())
  np.testing.assert_array_equal(x, pixels[[0, 2, 1, 3]])  # By class.
  np.testing.assert_array_equal(y, [0, 0, 1, 1])
  with pytest.raises(Exception, match="'ants', which is not a class"):
    tfrecord_inputs.image_rows(str(tmp_path / "images"), image_size=(6, 6),
                               channels=3, class_names=["bees", "wasps"])
  assert not os.path.exists(tmp_path / "csv" / ".input-scratch")
