"""TFRecord files read in plain Python: counts and labels, no TF runtime."""

import json

import numpy as np
import pytest
import tensorflow as tf

from datasets import from_path, from_tfrecords, tfrecord_files
from datasets.errors import DataError


def write_records(path, payloads):
  with tf.io.TFRecordWriter(str(path)) as writer:
    for payload in payloads:
      writer.write(payload)


def write_examples(path, labels, *, label_kind="int64"):
  examples = []
  for index, label in enumerate(labels):
    feature = {"x": tf.train.Feature(float_list=tf.train.FloatList(
        value=[index, index + 0.5]))}
    if label is not None and label_kind == "int64":
      feature["label"] = tf.train.Feature(int64_list=tf.train.Int64List(
          value=[label]))
    elif label is not None:
      feature["label"] = tf.train.Feature(float_list=tf.train.FloatList(
          value=[label]))
    examples.append(tf.train.Example(features=tf.train.Features(
        feature=feature)).SerializeToString())
  write_records(path, examples)


@pytest.mark.parametrize("sizes", [[], [0], [1, 0, 7], [5000, 3, 70_000]])
def test_counts_and_data_match_tensorflows_reader(tmp_path, sizes):
  rng = np.random.default_rng(len(sizes))
  payloads = [rng.integers(0, 256, size, dtype=np.uint8).tobytes()
              for size in sizes]
  path = tmp_path / "data.tfrecord"
  write_records(path, payloads)
  assert tfrecord_files.count_records([str(path)]) == [len(payloads)]
  assert list(tfrecord_files.read_records(str(path))) == payloads
  assert [bytes(record.numpy()) for record in
          tf.data.TFRecordDataset(str(path))] == payloads


def test_many_files_are_counted_one_by_one(tmp_path):
  paths = []
  for index, count in enumerate([3, 0, 11]):
    paths.append(str(tmp_path / f"part-{index}.tfrecord"))
    write_records(paths[-1], [b"record %d" % i for i in range(count)])
  assert tfrecord_files.count_records(paths) == [3, 0, 11]


def test_masked_crc_of_the_tfrecord_format():
  # TensorFlow's own writer produced the header of an 8-byte length 5:
  # bytes 8..12 of any file whose first record has 5 bytes.
  assert tfrecord_files.masked_crc32c((5).to_bytes(8, "little")) == (
      int.from_bytes(_first_header(b"12345")[8:12], "little"))


def _first_header(payload: bytes) -> bytes:
  import tempfile  # pylint: disable=import-outside-toplevel
  with tempfile.NamedTemporaryFile(suffix=".tfrecord") as file:
    write_records(file.name, [payload])
    return open(file.name, "rb").read()[:12]


@pytest.mark.parametrize("damage, why", [
    (lambda data: data[:-3], "record 1 is cut short"),
    (lambda data: data[:5], "record 0 is cut short"),
    (lambda data: data[:20] + bytes([data[20] ^ 1]) + data[21:],
     "record 1 has a corrupt header"),
    (lambda data: b"not a tfrecord file at all, just text", "record 0 has a"
     " corrupt header"),
])
def test_damaged_files_are_one_sentence_naming_the_record(tmp_path, damage,
                                                          why):
  path = tmp_path / "damaged.tfrecord"
  write_records(path, [b"abc", b"defgh"])  # Record 1 starts at byte 19.
  path.write_bytes(damage(path.read_bytes()))
  with pytest.raises(DataError) as error:
    tfrecord_files.count_records([str(path)])
  assert str(error.value) == (f"{path} is not a readable TFRecord file"
                              f" ({why}).")


def test_a_gzip_compressed_file_is_one_sentence(tmp_path):
  path = tmp_path / "data.tfrecord.gz"
  with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
    writer.write(b"abc")
  with pytest.raises(DataError) as error:
    tfrecord_files.count_records([str(path)])
  assert str(error.value) == (f"{path} is GZIP-compressed; TFRecord files"
                              " are read uncompressed: decompress it"
                              " (gunzip).")


def test_an_unreadable_path_is_one_sentence(tmp_path):
  with pytest.raises(DataError, match="is not a readable TFRecord file"):
    tfrecord_files.count_records([str(tmp_path)])


def test_schema_classes_come_from_the_largest_label(tmp_path):
  write_examples(tmp_path / "a.tfrecord", [0, 4, 1])
  write_examples(tmp_path / "b.tfrecord", [6, 2])
  source = from_tfrecords(str(tmp_path / "*.tfrecord"),
                          features={"x": tf.io.FixedLenFeature([2],
                                                               tf.float32)},
                          label="label")
  assert source.num_classes == 7 and source.counts == [3, 2]


def test_a_record_without_its_label_is_one_sentence(tmp_path):
  write_examples(tmp_path / "a.tfrecord", [0, None, 1])
  (tmp_path / "schema.json").write_text(json.dumps(
      {"features": {"x": {"shape": [2], "dtype": "float32"}},
       "label": "label"}))
  with pytest.raises(DataError) as error:
    from_path(str(tmp_path / "*.tfrecord"))
  assert str(error.value) == (
      f"record 1 of {tmp_path / 'a.tfrecord'} has no int64 feature 'label'"
      " (the label); fix the schema's label or its dtype.")


def test_a_float_label_declared_int64_is_one_sentence(tmp_path):
  write_examples(tmp_path / "a.tfrecord", [0.5, 1.5], label_kind="float")
  with pytest.raises(DataError, match="record 0 of .* has no int64 feature"):
    from_tfrecords(str(tmp_path / "a.tfrecord"),
                   features={"x": tf.io.FixedLenFeature([2], tf.float32)},
                   label="label")


def test_a_missing_label_takes_the_specs_default(tmp_path):
  write_examples(tmp_path / "a.tfrecord", [2, None])
  source = from_tfrecords(
      str(tmp_path / "a.tfrecord"),
      features={"x": tf.io.FixedLenFeature([2], tf.float32),
                "label": tf.io.FixedLenFeature([], tf.int64,
                                               default_value=5)},
      label="label")
  assert source.num_classes == 6
