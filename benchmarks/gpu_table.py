"""The table of `gpu_scaling`: one row per check, printed as it comes."""

from collections.abc import Callable, Iterator
import dataclasses
import time
from typing import Protocol

from benchmarks import gpu_runs

HEADER = ("| # | check | setup | verdict | examples/s | detail |\n"
          "| --- | --- | --- | --- | --- | --- |")


@dataclasses.dataclass(frozen=True)
class Row:
  """One line of the table."""

  check: str
  setup: str
  verdict: str  # PASS, WARN, FAIL or "skipped: why".
  rate: float | None = None
  detail: str = ""

  def markdown(self, number: int) -> str:
    rate = "" if self.rate is None else f"{self.rate:,.0f}"
    detail = self.detail.replace("|", "/").replace("\n", " ")
    return (f"| {number} | {self.check} | {self.setup} | {self.verdict} |"
            f" {rate} | {detail} |")


class Plan(Protocol):
  def plan(self) -> list[tuple[str, Callable[[], Iterator["Row"]]]]:
    """(check name, check) in order; a check yields its rows."""


def run_checks(checks: Plan, *, budget: float, clock=time.monotonic,
               out=print) -> list[Row]:
  """Runs every check, printing each row as it comes; never stops early.

  A check that raises gives a FAIL row with the one-line reason; checks
  that start after `budget` seconds are skipped.
  """
  start = clock()
  rows = []

  def emit(row: Row) -> None:
    rows.append(row)
    out(row.markdown(len(rows)), flush=True)

  out(HEADER, flush=True)
  for name, check in checks.plan():
    if clock() - start > budget - 30:
      emit(Row(name, "", f"skipped: time budget ({budget:.0f} s) used up"))
      continue
    try:
      for row in check():
        emit(row)
    except gpu_runs.RunFailed as error:
      emit(Row(name, "", "FAIL", detail=str(error)))
    except Exception as error:  # pylint: disable=broad-except
      first = (str(error).strip().splitlines() or [""])[0]
      emit(Row(name, "", "FAIL", detail=f"{type(error).__name__}: {first}"))
  return rows
