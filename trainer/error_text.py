"""Keras's and TensorFlow's cause, out of their long error texts, on one line.

A model call that fails is wrapped by Keras ("Exception encountered when
calling X.call()", the cause, the arguments); a step that fails in a
`tf.function` raises an op error with the Python lines that defined the
node. The harness reports one sentence, so these keep only the cause.
"""

import re

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def describe_call_error(error: Exception) -> str:
  """Keras's cause out of the error a model call raised, on one line.

  Keras 3 wraps a layer's error as "Exception encountered when calling
  X.call().", the cause, then "Arguments received by ..."; TensorFlow adds
  `{{function_node ...}}` and `[Op:...]` around an op's message.
  """
  text = _ANSI.sub("", str(error))
  if "Exception encountered when calling" in text:
    body = text.split("Arguments received by")[0].splitlines()[1:]
    text = "\n".join(body)
  text = re.sub(r"\{\{[^}]*\}\}", "", text)
  text = re.sub(r"\s*\[Op:[^\]]*\].*", "", text)
  # Keras prints the whole input tensor in some messages.
  text = re.sub(r"for input \[.*?\] with name", "for input with name", text,
                flags=re.DOTALL)
  lines = [line.strip() for line in text.splitlines() if line.strip()]
  cause = lines[0] if lines else type(error).__name__
  return cause[:400].rstrip(".")


def describe_op_error(error: Exception) -> str:
  """The cause in a TensorFlow op error of a running step, on one line.

  Its text is "Graph execution error:", the Python lines that defined the
  failing node, then the cause ("Received a label value of 2 which is
  outside the valid range of [0, 1).  Label values: ...") and the node.
  """
  lines = [line.strip() for line in str(error).splitlines()]
  node = next((index for index, line in enumerate(lines)
               if line.startswith("[[")), len(lines))
  causes = [line for line in lines[:node] if line]
  cause = causes[-1] if causes else type(error).__name__
  cause = re.sub(r"\s*\[Op:[^\]]*\].*", "", cause.split("  ")[0])
  return cause[:300].rstrip(".")
