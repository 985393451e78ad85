"""The network's layers and parameter count, as plain text and as markdown.

Keras 3's `Model.summary()` prints a rich table to the terminal; with a
`print_fn` it hands the whole captured table over as one string instead.
"""

from absl import logging
import keras


def describe(network: keras.Model) -> str:
  """`network.summary()` as text: layers, output shapes, parameter counts.

  Args:
    network: A built Keras model (the network, not the training wrapper).

  Returns:
    The summary's lines joined by newlines, without trailing blank lines.
  """
  captured: list[str] = []
  # Keras 3 calls print_fn once with the whole table (other versions once
  # per line, some with `line_break=`). Keep the default `line_length`: a
  # wider one than rich's 80-column console drops the last column.
  network.summary(print_fn=lambda text, *_, **__: captured.append(text))
  lines = "\n".join(captured).splitlines()
  return "\n".join(line.rstrip() for line in lines).strip("\n")


def as_markdown(text: str) -> str:
  """`text` as a markdown code block: TensorBoard's Text tab renders markdown.

  Every line is indented by 4 spaces, so the table keeps its columns in a
  monospace font.
  """
  return "\n".join("    " + line for line in text.splitlines())


def log(network: keras.Model) -> None:
  """Logs the summary, one log line per line of the table."""
  for line in describe(network).splitlines():
    logging.info("%s", line)
