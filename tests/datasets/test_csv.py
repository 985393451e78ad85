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
  assert source.num_classes == 1 and source.task == "regression"
  assert "(regression targets)" in source.description
  (x, y), = global_steps(source, 1, global_batch_size=2)
  assert y.dtype == np.float32 and sorted(x[:, 0].tolist()) == [1.0, 3.0]


def test_glob_reads_files_in_sorted_order_and_resumes(tmp_path):
  write_csv(tmp_path / "b.csv", [f"{i},0,{i}" for i in range(5, 10)])
  write_csv(tmp_path / "a.csv", [f"{i},0,{i}" for i in range(5)])
  source = from_csv(str(tmp_path / "*.csv"), label_column="target",
                    task="classification", shuffle=False)
  assert "from 2 files" in source.description
  np.testing.assert_array_equal(source.data.labels, np.arange(10))
  shuffled = from_csv(str(tmp_path / "*.csv"), label_column="target",
                      task="classification")
  full = global_steps(shuffled, 8, global_batch_size=4)
  assert_steps_equal(global_steps(shuffled, 3, global_batch_size=4,
                                  start_step=5), full[5:])


def test_bad_files_name_file_line_and_column(tmp_path):
  path = write_csv(tmp_path / "bad.csv", ["1,2,0", "3,x,1"])
  with pytest.raises(DataError, match=r"bad.csv line 3 column 'b' holds 'x',"
                     " not a number; features must be numbers"):
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


def test_text_labels_are_sorted_classes_and_eval_keeps_their_indices(
    tmp_path):
  species = ["virginica", " setosa", "versicolor "] * 4  # Spaces as typed.
  path = write_csv(tmp_path / "iris.csv",
                   [f"{i},{i},{name}" for i, name in enumerate(species)],
                   header="a,b,species")
  source = from_csv(path, label_column="species", shuffle=False)
  assert source.class_names == ["setosa", "versicolor", "virginica"]
  assert source.task == "classification" and source.num_classes == 3
  np.testing.assert_array_equal(source.data.labels[:3], [2, 0, 1])
  assert "(3 classes: setosa, versicolor, virginica)" in source.description
  assert source.split(0.25)[1].class_names == source.class_names
  only_two = write_csv(tmp_path / "eval.csv", ["0,0,virginica", "1,1,versicolor"],
                       header="a,b,species")
  held_out = from_csv(only_two, label_column="species", shuffle=False,
                      class_names=source.class_names)
  np.testing.assert_array_equal(held_out.data.labels, [2, 1])
  other = write_csv(tmp_path / "other.csv", ["0,0,rose"], header="a,b,species")
  with pytest.raises(DataError, match="line 2 column 'species' holds 'rose',"
                     " which is not a class of the training data"):
    from_csv(other, label_column="species", class_names=source.class_names)


@pytest.mark.parametrize("labels,task,expected", [
    (["yes", "no", "yes", "no"], "auto", ["no", "yes"]),
    (["True", "False", "True", "False"], "auto", ["False", "True"]),
    (["1", "0", "1", "0"], "auto", None),
    (["1.0", "2.0", "1.0", "2.0"], "auto", None),  # 3 classes: 0 unseen.
    (["1.5", "2", "3", "4"], "regression", None),
    (["151.0", "75.0", "141.0", "206.0"], "regression", None),
])
def test_label_kinds(tmp_path, labels, task, expected):
  path = write_csv(tmp_path / "x.csv", [f"{i},0,{v}" for i, v in
                                        enumerate(labels)])
  source = from_csv(path, label_column="target", task=task, shuffle=False)
  assert source.class_names == expected
  assert source.task == ("regression" if task == "regression"
                         else "classification")
  if task == "regression":
    np.testing.assert_allclose(source.data.labels, [float(v) for v in labels])


@pytest.mark.parametrize("labels,task,message", [
    ([f"{v}.0" for v in range(30, 90)], "auto",
     "holds 60 distinct whole numbers in 60 rows, so it may be classes or"
     " quantities: give task=regression or task=classification"),
    (["0.5", "1.5", "2"], "classification",
     "holds labels with fractions such as 0.5, which cannot be classes"),
    (["-1", "1", "-1", "1"], "auto", "holds negative whole numbers"),
    (["-1", "1", "-1", "1"], "classification",
     "holds the class -1; classes are indices from 0"),
    (["a", "a", "a"], "auto", "holds one class only ('a')"),
    (["3", "3", "3", "3"], "auto", "holds one class only (3)"),
    (["5", "NA", "6", "7"], "auto",
     "line 3 column 'target' holds 'NA' where other rows hold numbers"),
    (["setosa", "virginica"], "regression",
     "line 2 column 'target' holds 'setosa', not a number; task=regression"),
    (["1", "", "0"], "auto", "line 3 has no label in column 'target'"),
    (["1", "0"], "binary", "task='binary' must be one of auto,"),
])
def test_labels_in_doubt_or_against_the_task_are_one_sentence(
    tmp_path, labels, task, message):
  path = write_csv(tmp_path / "x.csv", [f"{i},0,{v}" for i, v in
                                        enumerate(labels)])
  with pytest.raises(DataError) as raised:
    from_csv(path, label_column="target", task=task)
  assert message in str(raised.value)
  assert str(raised.value).count(". ") == 0  # One sentence.


def test_excel_bom_and_crlf(tmp_path):
  path = tmp_path / "excel.csv"
  path.write_bytes("\ufeffspecies,a\r\ncat,1\r\ndog,2\r\n".encode("utf-8"))
  source = from_csv(str(path), label_column="species")
  assert source.class_names == ["cat", "dog"] and source.input_shape == (1,)
