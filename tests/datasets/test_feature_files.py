"""`datasets.files.load_features` on CSVs: read in chunks, named errors."""

import numpy as np
import pytest

from datasets import files
from datasets.errors import DataError


def _write(tmp_path, text, name="x.csv"):
  path = tmp_path / name
  path.write_text(text, encoding="utf-8")
  return str(path)


@pytest.fixture(name="small_chunks")
def _small_chunks(monkeypatch):
  monkeypatch.setattr(files.csv_parse, "chunk_rows", lambda width: 7)


def test_chunks_of_a_larger_file_equal_one_read(tmp_path, small_chunks):
  del small_chunks
  rng = np.random.default_rng(0)
  values = rng.normal(size=(50, 4)) * 10.0 ** rng.integers(-8, 8, (50, 4))
  path = _write(tmp_path, "".join(
      ",".join(repr(float(v)) for v in row) + "\n" for row in values))
  expected = np.array([[float(repr(float(v))) for v in row]
                       for row in values], np.float32)
  np.testing.assert_array_equal(files._read_csv(path, None), expected)  # pylint: disable=protected-access
  np.testing.assert_array_equal(  # pandas' parser took it (no fallback).
      files._fast_csv(path, 4, [0, 1, 2, 3], False), expected)  # pylint: disable=protected-access
  np.testing.assert_array_equal(  # The exact reader agrees, bit for bit.
      files._exact_csv(path, 4, [0, 1, 2, 3], False), expected)  # pylint: disable=protected-access


def test_a_header_picks_the_training_columns_by_name(tmp_path):
  path = _write(tmp_path, "\n\nb,label,a\n2,cat,1\n\n4,dog,3\n")
  np.testing.assert_array_equal(files._read_csv(path, ["a", "b"]),  # pylint: disable=protected-access
                                [[1, 2], [3, 4]])
  with pytest.raises(DataError, match="has no column 'c', a feature"):
    files._read_csv(path, ["a", "c"])  # pylint: disable=protected-access


@pytest.mark.parametrize("text, names, message", [
    ("1,2,3\n1,2,3,4\n", None, "line 2 has 4 cells, but the first row has 3"),
    ("1,2,3\n1,2\n", None, "line 2 has 2 cells, but the first row has 3"),
    ("a,b,label\n1,2\n", ["a", "b"], "line 2 has 2 cells, but the header"
     " has 3"),
    ("a,b,label\n1,2,x,9\n", ["a", "b"], "line 2 has 4 cells, but the header"
     " has 3"),
    ("1,2,3\n\n1,2,oops\n", None, "line 3 does not hold 3 numbers"),
    ("a,b\n", ["a", "b"], "holds a header row but no examples"),
    ("\n\n", None, "holds no rows"),
])
def test_a_ragged_or_bad_row_is_named_by_its_line(tmp_path, small_chunks,
                                                  text, names, message):
  # A long row was cut to the first row's width without a word before.
  del small_chunks
  path = _write(tmp_path, text)
  with pytest.raises(DataError, match=f"^{path} {message}"):
    files._read_csv(path, names)  # pylint: disable=protected-access


def test_nan_cells_and_spaces_are_read_as_float_reads_them(tmp_path):
  path = _write(tmp_path, "\ufeff 1, 2 ,nan\n4,5,6\n")
  np.testing.assert_array_equal(files._read_csv(path, None),  # pylint: disable=protected-access
                                [[1, 2, np.nan], [4, 5, 6]])


def test_both_readers_skip_lines_of_spaces_alike(tmp_path):
  # pandas skips a line of spaces; the exact reader (after a "nan") too.
  for last in ("6", "nan"):
    path = _write(tmp_path, f"1,2,3\n   \n4,5,{last}\n")
    values = files._read_csv(path, None)  # pylint: disable=protected-access
    assert values.shape == (2, 3), values


def test_an_oversized_cell_is_one_sentence(tmp_path):
  path = _write(tmp_path, "a,b,text\n1,2,x\n3,nan," + "y" * 200_000 + "\n")
  with pytest.raises(DataError, match=r"is not a readable \.csv file \(Error:"
                     " field larger than field limit"):
    files.load_features(path, (2,), ["a", "b"])
