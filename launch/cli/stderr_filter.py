"""Filters TensorFlow's C++ start-up lines out of a stream (a child process).

Run as `python -S stderr_filter.py HAS_GPU` with the lines on stdin; the kept
lines go to stdout (the process's real stderr). A process of its own, so it
needs no GIL of the process it filters (C++ may write while holding it) and
outlives that process if TensorFlow aborts while loading: a fatal line is
still shown. Standard library only, so it starts in milliseconds.
"""

import re
import sys

# A C++ log line: severity, date (0000 before absl's log is set up), time,
# thread, file:line] (TF >= 2.17); older TF: "2024-01-01 12:00:00.123: E ...]".
_NATIVE_LINE = re.compile(
    rb"^(?:([IWEF])\d{4} [\d:. ]+\s\d+ [\w./-]+:\d+\] "
    rb"|\d{4}-\d\d-\d\d [\d:.]+: ([IWEF]) [\w./-]+:\d+\] )")
_PREINIT_NOTICE = b"WARNING: All log messages before absl::InitializeLog()"
_CONTINUATION = b"To enable the following instructions"


def keep(line: bytes, previous_dropped: bool, has_gpu: bool) -> bool:
  """Whether a start-up line is worth a person's attention.

  INFO lines go; WARNING lines go too unless this machine has an NVIDIA
  device (there, "Cannot dlopen some GPU libraries" explains a run on the
  CPU). Errors stay, but for "failed call to cuInit" on a machine without
  an NVIDIA device, which only says there is no GPU. Lines that are not
  C++ log lines (Python's own output) stay.
  """
  if line.startswith(_PREINIT_NOTICE):
    return False
  if previous_dropped and line.startswith(_CONTINUATION):
    return False
  match = _NATIVE_LINE.match(line)
  if not match:
    return True
  severity = match.group(1) or match.group(2)
  if severity == b"I" or (severity == b"W" and not has_gpu):
    return False
  return has_gpu or b"cuInit" not in line


def main(has_gpu: bool) -> None:
  source, sink = sys.stdin.buffer, sys.stdout.buffer
  dropped = False
  for line in iter(source.readline, b""):
    dropped = not keep(line, dropped, has_gpu)
    if not dropped:
      sink.write(line)
      sink.flush()


if __name__ == "__main__":
  main(sys.argv[1:] == ["gpu"])
