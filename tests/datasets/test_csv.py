"""from_csv: header, label column, types, globs, errors, resume."""

import numpy as np
import pytest

from datasets import DataError, from_csv
from tests.datasets.helpers import assert_steps_equal, global_steps


def write_csv(path, rows, header="a,b,target"):
  path.write_text("\n".join([header] + rows) + "\n")
  return str(path)


def test_features_labels_and_description(tmp_path):
  path = write_csv(tmp_path / "data.csv",
                   [f"{i},{i * 0.5},{i % 3}" for i in range(9)])
  source = from_csv(path, label_column="target")
  assert source.num_examples == 9 and source.input_shape == (2,)
  assert source.num_classes == 3
  assert source.description == ("9 rows, 2 float features (not rescaled),"
                                " label column 'target' (3 classes)")
  mean, variance = source.standardization
  np.testing.assert_allclose(mean, [4.0, 2.0])
  np.testing.assert_allclose(variance, [60 / 9, 15 / 9], rtol=1e-6)
  (x, y), = global_steps(source, 1, global_batch_size=9)
  assert x.dtype == np.float32 and y.dtype == np.int32
  np.testing.assert_array_equal(np.sort(x[:, 0]), np.arange(9))


def test_float_labels_are_regression_and_label_column_may_be_first(tmp_path):
  path = write_csv(tmp_path / "r.csv", ["0.5,1,2", "1.5,3,4"], header="y,a,b")
  source = from_csv(path, label_column="y")
  assert source.num_classes == 1 and "float targets" in source.description
  (x, y), = global_steps(source, 1, global_batch_size=2)
  assert y.dtype == np.float32 and sorted(x[:, 0].tolist()) == [1.0, 3.0]


def test_glob_reads_files_in_sorted_order_and_resumes(tmp_path):
  write_csv(tmp_path / "b.csv", [f"{i},0,{i}" for i in range(5, 10)])
  write_csv(tmp_path / "a.csv", [f"{i},0,{i}" for i in range(5)])
  source = from_csv(str(tmp_path / "*.csv"), label_column="target",
                    shuffle=False)
  assert "from 2 files" in source.description
  np.testing.assert_array_equal(source.data.labels, np.arange(10))
  shuffled = from_csv(str(tmp_path / "*.csv"), label_column="target")
  full = global_steps(shuffled, 8, global_batch_size=4)
  assert_steps_equal(global_steps(shuffled, 3, global_batch_size=4,
                                  start_step=5), full[5:])


def test_bad_files_name_file_line_and_column(tmp_path):
  path = write_csv(tmp_path / "bad.csv", ["1,2,0", "3,x,1"])
  with pytest.raises(DataError, match=r"bad.csv line 3 column 'b' holds 'x',"
                     " not a number"):
    from_csv(path, label_column="target")
  with pytest.raises(DataError, match="no column 'label' for label_column"):
    from_csv(path, label_column="label")
  with pytest.raises(DataError, match="needs label_column"):
    from_csv(path, label_column=None)
  short = write_csv(tmp_path / "short.csv", ["1,2"])
  with pytest.raises(DataError, match="line 2 has 2 cells"):
    from_csv(short, label_column="target")
  with pytest.raises(DataError, match="no CSV file matches"):
    from_csv(str(tmp_path / "none*.csv"), label_column="target")
  with pytest.raises(DataError, match="header but no rows"):
    from_csv(write_csv(tmp_path / "empty.csv", []), label_column="target")
