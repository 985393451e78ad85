"""metrics.csv as Keras's CSVLogger users expect it, and the log lines."""

import csv

import pytest

from trainer import progress
from trainer import writers


def read_csv(path):
  with open(path, newline="", encoding="utf-8") as stream:
    reader = csv.DictReader(stream)
    return reader.fieldnames, list(reader)


def loop(writer, step, loss, accuracy, rate=0.1):
  writer.write("train", step, {"loss": loss, "accuracy": accuracy,
                               "learning_rate": rate, "steps_per_sec": 9.0,
                               "examples_per_sec": 576.0})


def test_one_row_per_evaluation_with_train_means_and_val_columns(tmp_path):
  path = tmp_path / "metrics.csv"
  writer = writers.CsvWriter(str(path))
  loop(writer, 10, 1.0, 0.5)
  loop(writer, 30, 0.4, 0.8, rate=0.05)  # 20 steps: twice the weight.
  writer.write("eval", 30, {"loss": 0.3, "accuracy": 0.9, "examples": 360})
  loop(writer, 40, 0.2, 1.0)
  writer.close()
  names, rows = read_csv(path)
  assert names == ["epoch", "step", "time", "loss", "accuracy",
                   "learning_rate", "val_loss", "val_accuracy"]
  assert [(row["epoch"], row["step"]) for row in rows] == [("0", "30"),
                                                           ("1", "40")]
  assert float(rows[0]["loss"]) == pytest.approx((1.0 * 10 + 0.4 * 20) / 30)
  assert float(rows[0]["accuracy"]) == pytest.approx(0.7)
  assert float(rows[0]["learning_rate"]) == 0.05  # The latest, not a mean.
  assert float(rows[0]["val_accuracy"]) == 0.9
  # Loops after the last evaluation: a row of train columns only.
  assert rows[1]["val_loss"] == "" and float(rows[1]["loss"]) == 0.2


def test_a_resumed_run_keeps_rows_up_to_its_start_and_redoes_the_rest(
    tmp_path):
  path = tmp_path / "metrics.csv"
  writer = writers.CsvWriter(str(path))
  for step in (10, 20, 30):
    loop(writer, step, 1.0 / step, 0.5)
    writer.write("eval", step, {"loss": 0.5, "accuracy": 0.5})
  # The process died after the eval at 30 but its checkpoint was at 20.
  writer = writers.CsvWriter(str(path), start_step=20)
  loop(writer, 30, 0.25, 0.75)
  writer.write("eval", 30, {"loss": 0.25, "accuracy": 0.75})
  _, rows = read_csv(path)
  assert [(row["epoch"], row["step"], row["val_loss"]) for row in rows] == [
      ("0", "10", "0.5"), ("1", "20", "0.5"), ("2", "30", "0.25")]
  assert float(rows[2]["loss"]) == 0.25  # Weighted from step 20, not 0.


def test_evaluations_of_saved_checkpoints_have_their_own_file(tmp_path):
  path = tmp_path / "evaluate.csv"
  writer = writers.CsvWriter(str(path), start_step=None, eval_prefix="")
  writer.write("evaluate", 100, {"loss": 0.5, "accuracy": 0.5,
                                 "examples": 360})
  writer = writers.CsvWriter(str(path), start_step=None, eval_prefix="")
  writer.write("evaluate", 200, {"loss": 0.25, "accuracy": 0.75})
  names, rows = read_csv(path)
  assert names == ["epoch", "step", "time", "loss", "accuracy"]
  assert [row["step"] for row in rows] == ["100", "200"]


def test_the_log_leaves_one_keras_line_per_evaluation():
  logger = progress.ProgressLogger(100)
  lines = []
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(progress.logging, "info",
                  lambda fmt, *args: lines.append(fmt % args))
    loop(logger, 50, 0.5, 0.75)
    logger.write("eval", 50, {"loss": 0.25, "accuracy": 0.875,
                              "examples": 360})
    logger.write("evaluate", 50, {"loss": 0.25, "examples": 360})
  assert lines[0] == ("step 50/100 loss 0.5000 accuracy 0.7500 | 576 ex/s |"
                      " ETA 0:06")
  assert lines[1] == ("step 50/100 - loss 0.5000 - accuracy 0.7500 -"
                      " val_loss 0.2500 - val_accuracy 0.8750")
  assert lines[2] == "checkpoint of step 50: loss 0.2500 (360 examples)"


def test_evaluating_a_complete_run_again_updates_its_last_row(tmp_path):
  path = tmp_path / "metrics.csv"
  writer = writers.CsvWriter(str(path))
  loop(writer, 20, 0.5, 0.5)
  writer.write("eval", 20, {"loss": 0.5, "accuracy": 0.5})
  writer = writers.CsvWriter(str(path), start_step=20)  # Complete.
  writer.write("eval", 20, {"loss": 0.5, "accuracy": 0.5})
  writer.close()
  _, rows = read_csv(path)
  assert [(row["epoch"], row["step"], row["loss"], row["val_loss"])
          for row in rows] == [("0", "20", "0.5", "0.5")]


def test_a_run_stopped_mid_epoch_continues_that_epochs_row(tmp_path):
  path = tmp_path / "metrics.csv"
  writer = writers.CsvWriter(str(path))
  loop(writer, 10, 1.0, 0.5)
  writer.write("eval", 10, {"loss": 0.5, "accuracy": 0.5})
  loop(writer, 20, 0.6, 0.6)
  writer.close()  # Stopped by a signal at step 20, saved there.
  writer = writers.CsvWriter(str(path), start_step=20)
  loop(writer, 40, 0.3, 0.9)  # 20 steps after the resume.
  writer.write("eval", 40, {"loss": 0.25, "accuracy": 0.75})
  writer.close()
  _, rows = read_csv(path)
  assert [(row["epoch"], row["step"]) for row in rows] == [("0", "10"),
                                                           ("1", "40")]
  # Steps 11-20 (0.6) and 21-40 (0.3), weighted: one epoch, as unstopped.
  assert float(rows[1]["loss"]) == pytest.approx((0.6 * 10 + 0.3 * 20) / 30)
  assert float(rows[1]["val_loss"]) == 0.25
