import io

import pytest

from trainer import progress


def _train(bar, step, loss, **extra):
  bar.write("train", step, {"loss": loss, "steps_per_sec": 10.0,
                            "examples_per_sec": 640.0, **extra})


@pytest.fixture(name="columns")
def _columns(monkeypatch):
  def set_columns(value):
    monkeypatch.setattr(progress, "_columns", lambda stream: value)
  set_columns(120)
  return set_columns


def test_bar_is_redrawn_and_each_evaluation_leaves_a_keras_line(columns):
  del columns
  stream = io.StringIO()
  bar = progress.ProgressBar(100, stream=stream, terminal=progress.Terminal())
  _train(bar, 25, 0.6, learning_rate=0.1)
  _train(bar, 50, 0.4, learning_rate=0.05)
  bar.progress("eval", 2, 6)
  bar.write("eval", 50, {"loss": 0.3, "accuracy": 0.9, "examples": 360})
  _train(bar, 100, 0.2)
  bar.close()
  segments = [s.replace("\x1b[K", "") for s in stream.getvalue().split("\r")]
  draws = [s for s in segments if s]
  assert draws[0] == ("step 25/100 [======>.................]  25%"
                      " loss 0.6000 | 640 ex/s | ETA 0:08")
  assert "learning_rate" not in draws[1]
  assert draws[2].startswith("eval 2/6 [========>")
  # Train means of the epoch (0.6 and 0.4 over 25 steps each) + val_.
  assert draws[3] == ("step 50/100 - loss 0.5000 - val_loss 0.3000"
                      " - val_accuracy 0.9000\n")
  assert draws[4].startswith("step 100/100 [========================] 100%")
  # No evaluation after the last loops: their means make the last line.
  assert draws[5] == "step 100/100 - loss 0.2000\n"


def test_bar_fits_the_terminal_width(columns):
  stream = io.StringIO()
  bar = progress.ProgressBar(10000, stream=stream,
                             terminal=progress.Terminal())
  for width in (80, 60, 40):
    columns(width)
    _train(bar, 5000, 0.123456, accuracy=0.5, precision=0.25, recall=0.75)
    drawn = stream.getvalue().split("\r")[-1].replace("\x1b[K", "")
    assert drawn.startswith("step 5000/10000")
    assert len(drawn) <= width - 1, drawn
    if width >= 60:  # Fitted, not cut: the metrics give way to the bar.
      assert drawn.endswith("ETA 8:20") and " 50% loss 0.1235" in drawn
      assert "[" in drawn and "ex/s" not in drawn


def test_a_log_line_goes_above_the_bar_which_is_redrawn(columns):
  del columns
  stream = io.StringIO()
  terminal = progress.Terminal()
  bar = progress.ProgressBar(100, stream=stream, terminal=terminal)
  _train(bar, 50, 0.5)
  terminal.write_line(stream, "Saved checkpoint /tmp/x/ckpt-50.")
  text = stream.getvalue()
  before, after = text.split("Saved checkpoint /tmp/x/ckpt-50.\n")
  assert before.endswith("\r\x1b[K")  # The bar was erased first...
  assert after.startswith("\r\x1b[Kstep 50/100 [")  # ...and redrawn below.


def test_long_evaluation_lines_break_between_metrics():
  line = ("step 250/1000 - loss 0.5032 - accuracy 0.8902 - val_loss 0.1309"
          " - val_accuracy 0.9722")
  rows = progress._wrap(line, 79).split("\n")  # pylint: disable=protected-access
  assert rows == ["step 250/1000 - loss 0.5032 - accuracy 0.8902 - val_loss"
                  " 0.1309", "  val_accuracy 0.9722"]
