"""from_csv at scale: the binary cache, its reuse, errors, and flat memory."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from datasets import DataError, csv_parse, from_csv
from tests.datasets.helpers import (assert_steps_equal, context,
                                    global_steps, to_numpy)
from tests.processes import REPO_ROOT, harness_env


def write_rows(path, rows, header="a,b,c,label"):
  path.write_text("\n".join([header] + rows) + "\n")
  return str(path)


def pixel_rows(count, seed=0):
  rng = np.random.default_rng(seed)
  return [f"{a},{b},{c},{label}" for a, b, c, label in
          rng.integers(0, 256, (count, 4)) % [256, 256, 256, 3]]


def entries(cache_dir):
  """The cache's complete entries (group/stamp folders)."""
  found = []
  for group in os.listdir(cache_dir):
    found += [os.path.join(group, name)
              for name in os.listdir(os.path.join(cache_dir, group))]
  return found


def test_cached_table_serves_the_same_batches_as_memory(tmp_path):
  path = write_rows(tmp_path / "data.csv", pixel_rows(300))
  in_memory = from_csv(path, label_column="label")
  cached = from_csv(path, label_column="label", cache_dir=tmp_path / "c")
  assert cached.data.table.path and in_memory.data.table.path is None
  assert cached.data.table.dtype == np.uint8  # 0..255 kept in one byte.
  assert cached.description == in_memory.description
  for a, b in zip(cached.standardization, in_memory.standardization):
    np.testing.assert_allclose(a, b, rtol=1e-6)
  full = global_steps(cached, 6, global_batch_size=64)
  assert_steps_equal(full, global_steps(in_memory, 6, global_batch_size=64))
  assert full[0][0].dtype == np.float32
  # Exact resume and two workers x two replicas: the same global batches.
  assert_steps_equal(global_steps(cached, 3, global_batch_size=64,
                                  start_step=3), full[3:])
  assert_steps_equal(global_steps(cached, 6, global_batch_size=64,
                                  pipelines=2, replicas=4), full)
  # The seeded split and its part's statistics, as in memory.
  for a, b in zip(cached.split(0.25, seed=3), in_memory.split(0.25, seed=3)):
    np.testing.assert_array_equal(a.data.labels, b.data.labels)
    for x, y in zip(a.standardization, b.standardization):
      np.testing.assert_allclose(x, y, rtol=1e-5)
    assert_steps_equal(global_steps(a, 2, global_batch_size=16),
                       global_steps(b, 2, global_batch_size=16))
  unshuffled = from_csv(path, label_column="label", shuffle=False,
                        cache_dir=tmp_path / "c", scale=0.5)
  (x, _), = global_steps(unshuffled, 1, global_batch_size=4)
  expected = np.array([[float(v) for v in row.split(",")[:3]]
                       for row in pixel_rows(4)]) * 0.5
  np.testing.assert_array_equal(x, expected)


def test_cache_is_reused_while_unchanged_and_rebuilt_after(tmp_path):
  path = write_rows(tmp_path / "data.csv", pixel_rows(50))
  cache = tmp_path / "cache"
  first = from_csv(path, label_column="label", cache_dir=cache)
  table = first.data.table.path
  before = os.stat(table).st_mtime_ns
  from_csv(path, label_column="label", cache_dir=cache)
  assert os.stat(table).st_mtime_ns == before and len(entries(cache)) == 1
  write_rows(tmp_path / "data.csv", pixel_rows(60, seed=1))
  changed = from_csv(path, label_column="label", cache_dir=cache)
  assert changed.num_examples == 60 and not os.path.exists(table)
  assert len(entries(cache)) == 1  # The stale entry is gone.
  assert os.listdir(tmp_path) == sorted(os.listdir(tmp_path))  # No litter:
  assert set(os.listdir(tmp_path)) == {"data.csv", "cache"}


def test_entries_of_deleted_files_are_removed(tmp_path):
  cache = tmp_path / "cache"
  gone = write_rows(tmp_path / "gone.csv", pixel_rows(20))
  from_csv(gone, label_column="label", cache_dir=cache)
  os.remove(gone)
  kept = write_rows(tmp_path / "kept.csv", pixel_rows(20))
  source = from_csv(kept, label_column="label", cache_dir=cache)
  assert entries(cache) == [os.path.relpath(
      os.path.dirname(source.data.table.path), cache)]


def test_a_damaged_entry_is_built_again(tmp_path):
  path = write_rows(tmp_path / "data.csv", pixel_rows(40))
  source = from_csv(path, label_column="label", cache_dir=tmp_path / "c")
  with open(source.data.table.path, "r+b") as stream:
    stream.truncate(10)
  again = from_csv(path, label_column="label", cache_dir=tmp_path / "c")
  assert_steps_equal(global_steps(again, 2), global_steps(
      from_csv(path, label_column="label"), 2))


def test_an_unusable_cache_folder_is_one_sentence(tmp_path):
  path = write_rows(tmp_path / "data.csv", pixel_rows(10))
  blocker = tmp_path / "file"
  blocker.write_text("not a folder")
  with pytest.raises(DataError, match=r"the CSV cache folder .* cannot be"
                     r" written \(.*\); give a writable cache_dir\.$"):
    from_csv(path, label_column="label", cache_dir=blocker)


@pytest.mark.parametrize("rows,message", [
    (["1,2,3,0", "4,x,6,1"], r"bad.csv line 3 column 'b' holds 'x', not a"
     r" number; features must be numbers"),
    (["1,2,3,0", "", "4,5,6"], r"bad.csv line 4 has 3 cells, but the header"
     r" has 4\."),
    (["1,2,3,0", "4,5,6,1,7"], r"bad.csv line 3 has 5 cells, but the header"
     r" has 4\."),
    (["1,2,3,0", "4,5,6, "], r"bad.csv line 3 has no label in column"
     r" 'label'\."),
    (["1,2,3,0", "4,5,,1"], r"bad.csv line 3 column 'c' holds '', not a"
     r" number"),
    ([], r"holds a header but no rows\."),
])
def test_errors_name_file_line_and_column_and_leave_no_entry(tmp_path, rows,
                                                             message):
  path = write_rows(tmp_path / "bad.csv", rows)
  cache = tmp_path / "cache"
  for cache_dir in (None, cache):
    with pytest.raises(DataError, match=message):
      from_csv(path, label_column="label", cache_dir=cache_dir)
  # A file that cannot be converted leaves no entry and no partial one
  # (a label error is found after a complete conversion, which is kept).
  if "label" not in message and rows:
    assert not entries(cache)
  with pytest.raises(DataError, match=r"has no column 'target' for"
                     " label_column; its columns are a, b, c, label"):
    from_csv(path, label_column="target", cache_dir=cache)
  empty = tmp_path / "empty.csv"
  empty.write_text("")
  with pytest.raises(DataError, match="empty.csv is empty; it needs a header"
                     " row"):
    from_csv(str(empty), label_column="label", cache_dir=cache)


def test_errors_in_a_later_file_and_line_after_blank_lines(tmp_path):
  write_rows(tmp_path / "a.csv", ["1,2,3,0", "4,5,6,1"])
  (tmp_path / "b.csv").write_text("a,b,c,label\n\n1,2,3,0\n\n7,8,9,\n")
  with pytest.raises(DataError, match=r"b.csv line 5 has no label"):
    from_csv(str(tmp_path / "*.csv"), label_column="label",
             cache_dir=tmp_path / "c")
  (tmp_path / "b.csv").write_text("a,b,c,label\n1,2,3,0\n7,8,9,dog\n")
  with pytest.raises(DataError, match=r"b.csv line 3 column 'label' holds"
                     r" 'dog' where other rows hold numbers \('0'\)"):
    from_csv(str(tmp_path / "*.csv"), label_column="label",
             cache_dir=tmp_path / "c")


def test_widening_across_chunks_and_cells_only_python_reads(tmp_path,
                                                            monkeypatch):
  monkeypatch.setattr(csv_parse, "_MAX_CHUNK_ROWS", 256)
  monkeypatch.setattr(csv_parse, "_MIN_CHUNK_ROWS", 256)
  rows = [f"{i % 200},1,2,{i % 2}" for i in range(600)]
  rows[300] = "-7,1,2,0"      # int16 from the second chunk on.
  rows[599] = "0.1,1e3,2,1"   # float32 in the third.
  path = write_rows(tmp_path / "wide.csv", rows)
  source = from_csv(path, label_column="label", shuffle=False,
                    cache_dir=tmp_path / "c")
  assert source.data.table.dtype == np.float32
  (x, y), = global_steps(source, 1, global_batch_size=600)
  expected = np.array([[float(v) for v in row.split(",")[:3]]
                       for row in rows], np.float32)
  np.testing.assert_array_equal(x, expected)
  np.testing.assert_array_equal(y, [int(row[-1]) for row in rows])
  mean, variance = source.standardization
  np.testing.assert_allclose(mean, expected.astype(np.float64).mean(0),
                             rtol=1e-6)
  np.testing.assert_allclose(variance, expected.astype(np.float64).var(0),
                             rtol=1e-5)
  # Cells pandas does not parse but float() does: the exact reader takes
  # them, as the reader always has (a "nan" feature, spaces, underscores).
  odd = write_rows(tmp_path / "odd.csv", ["nan, 2 ,1_000,0", "1,2,3,1"])
  source = from_csv(odd, label_column="label", shuffle=False,
                    cache_dir=tmp_path / "c")
  (x, _), = global_steps(source, 1, global_batch_size=2)
  np.testing.assert_array_equal(x, [[np.nan, 2, 1000], [1, 2, 3]])


def test_text_labels_from_the_cache_keep_their_classes(tmp_path):
  names = ["virginica", "setosa", "versicolor"]
  path = write_rows(tmp_path / "iris.csv",
                    [f"{i},{i},{i},{names[i % 3]}" for i in range(30)])
  source = from_csv(path, label_column="label", cache_dir=tmp_path / "c")
  assert source.class_names == sorted(names)
  np.testing.assert_array_equal(source.data.labels[:3], [2, 0, 1])
  eval_path = write_rows(tmp_path / "eval.csv", ["0,0,0,setosa",
                                                 "0,0,0,rose"])
  with pytest.raises(DataError, match="eval.csv line 3 column 'label' holds"
                     " 'rose', which is not a class of the training data"):
    from_csv(eval_path, label_column="label", class_names=source.class_names,
             cache_dir=tmp_path / "c")


def test_one_pipeline_reads_rows_without_the_whole_table(tmp_path):
  path = write_rows(tmp_path / "data.csv", pixel_rows(100))
  source = from_csv(path, label_column="label", cache_dir=tmp_path / "c")
  batches = source.train_dataset_fn(global_batch_size=10, seed=0)(
      context(1, 0, 1))
  x, y = to_numpy(next(iter(batches)))
  assert x.shape == (10, 3) and y.shape == (10,)


_PROBE = """
import resource, sys
sys.path.insert(0, {root!r})
from benchmarks.data_scale import write_csv
write_csv({path!r}, {rows}, columns=20)
from datasets import from_csv
source = from_csv({path!r}, label_column="label", cache_dir={cache!r})
batches = source.train_dataset_fn(global_batch_size=256, seed=0)(None)
iterator = iter(batches)
for _ in range({rows} // 256 + 2):  # A whole epoch, shuffled.
  next(iterator)
del iterator, batches
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def _peak_rss_mb(tmp_path, rows: int) -> int:
  path, cache = str(tmp_path / f"{rows}.csv"), str(tmp_path / f"c{rows}")
  result = subprocess.run(
      [sys.executable, "-c", _PROBE.format(root=REPO_ROOT, path=path,
                                           rows=rows, cache=cache)],
      env=harness_env(), capture_output=True, text=True, timeout=600,
      check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  return int(result.stdout.split()[-1])


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_file(tmp_path):
  # 20k and 200k rows of 21 columns (1 MB and 10 MB of text): the reader
  # that kept every cell as a Python string grew 61 MB between them; the
  # cache's growth is the labels' arrays (~20 bytes a row while read).
  small, large = (_peak_rss_mb(tmp_path, rows) for rows in (20_000, 200_000))
  assert large - small < 25, (small, large)  # Was 61 MB; now ~5 MB.


def test_fit_on_the_cached_table_equals_fit_in_memory(tmp_path):
  from launch import fit  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(0)
  x = rng.normal(size=(400, 5))
  rows = [",".join(f"{v:.4f}" for v in row) + f",{int(row[0] + row[1] > 0)}"
          for row in x]
  path = write_rows(tmp_path / "data.csv", rows, header="a,b,c,d,e,label")
  results = []
  for cache_dir in (None, tmp_path / "cache"):
    source = from_csv(path, label_column="label", cache_dir=cache_dir)
    result = fit(None, source, model="mlp", validation_split=0.25,
                 model_dir=str(tmp_path / f"run{len(results)}"),
                 global_batch_size=32, train_steps=30, cpu_devices=1,
                 progress="none", deterministic=True)
    results.append([{k: v for k, v in row.items() if "per_sec" not in k
                     and "time" not in k} for row in result.history])
  assert results[0] == results[1] and results[0]
  assert results[0][-1]["split"] == "eval"
