import io

from trainer import progress


def test_bar_redraws_one_line_and_ends_it():
  stream = io.StringIO()
  bar = progress.ProgressBar(100, stream=stream)
  bar.write("train", 50, {"loss": 0.5, "steps_per_sec": 10.0,
                          "examples_per_sec": 640.0, "learning_rate": 0.1})
  bar.progress("eval", 2, 6)
  bar.write("eval", 50, {"loss": 0.4, "accuracy": 0.9, "examples": 360})
  bar.write("train", 100, {"loss": 0.3, "steps_per_sec": 10.0,
                           "examples_per_sec": 640.0})
  bar.close()
  text = stream.getvalue()
  draws = text.split("\r")[1:]
  assert draws[0].startswith("step 50/100 [============>...........]  50%"
                             " loss 0.5000 | 640 ex/s | ETA 0:05")
  assert "learning_rate" not in draws[0]
  assert draws[1].startswith("eval 2/6 [========>")
  assert draws[2].startswith("eval at step 50: loss 0.4000 accuracy 0.9000 |"
                             " 360 examples") and draws[2].endswith("\n")
  assert draws[3].startswith("step 100/100 [========================] 100%")
  assert text.endswith("ETA 0:00\n")  # close() adds no second newline.


def test_shorter_redraw_blanks_the_rest_of_the_line():
  stream = io.StringIO()
  bar = progress.ProgressBar(10, stream=stream)
  bar.progress("eval", 1, 100)
  bar.progress("eval", 10, 100)
  first, second = stream.getvalue().split("\r")[1:]
  assert len(second) >= len(first)
  bar.close()
  assert stream.getvalue().endswith("\n")
