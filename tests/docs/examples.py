"""The code blocks of the README and docs/, read the way tests run them.

A Python or shell block is marked on the line above it, either
`<!-- example: NAME -->` (a test runs it, taking it with `docs_example`) or
`<!-- not executed: REASON -->`. `tests/docs/test_docs.py` checks that every
block is marked and every named one is taken by a test.
"""

import dataclasses
import glob
import os
import re

from tests.processes import REPO_ROOT

# Languages whose blocks are examples a user would run.
EXAMPLE_LANGUAGES = ("python", "sh", "shell", "bash", "console")

_FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<language>[\w-]*)[ \t]*$")
_EXAMPLE_MARK = re.compile(r"^\s*<!-- example: (?P<name>[\w-]+) -->\s*$")
_SKIP_MARK = re.compile(r"^\s*<!-- not executed: (?P<reason>\S.*\S) -->\s*$")


@dataclasses.dataclass(frozen=True)
class Block:
  """One fenced code block of a page.

  Attributes:
    page: The page's path relative to the repository, e.g. "docs/data.md".
    line: The 1-based line of the opening fence.
    language: The fence's language ("" when none).
    mark: The line above the fence (stripped).
    code: The block's text, its fence's indentation removed.
  """
  page: str
  line: int
  language: str
  mark: str
  code: str

  @property
  def example_name(self) -> str | None:
    match = _EXAMPLE_MARK.match(self.mark)
    return match.group("name") if match else None

  @property
  def skip_reason(self) -> str | None:
    match = _SKIP_MARK.match(self.mark)
    return match.group("reason") if match else None


def pages() -> list[str]:
  """The README and every page under docs/, relative to the repository."""
  found = sorted(os.path.relpath(path, REPO_ROOT) for path in glob.glob(
      os.path.join(REPO_ROOT, "docs", "**", "*.md"), recursive=True))
  return ["README.md", *found]


def read_page(page: str) -> str:
  with open(os.path.join(REPO_ROOT, page), encoding="utf-8") as stream:
    return stream.read()


def blocks(page: str) -> list[Block]:
  """Every fenced code block of `page`, in order."""
  lines = read_page(page).split("\n")
  found, index = [], 0
  while index < len(lines):
    opening = _FENCE.match(lines[index])
    if not opening:
      index += 1
      continue
    indent = opening.group("indent")
    end = index + 1
    while end < len(lines) and lines[end].strip() != "```":
      end += 1
    assert end < len(lines), f"{page}:{index + 1}: a code block never closes"
    body = [line[len(indent):] if line.startswith(indent) else line
            for line in lines[index + 1:end]]
    mark = lines[index - 1].strip() if index else ""
    found.append(Block(page, index + 1, opening.group("language"), mark,
                       "\n".join(body) + "\n"))
    index = end + 1
  return found


def docs_example(page: str, name: str) -> str:
  """The code of the block marked `<!-- example: name -->` on `page`.

  Args:
    page: "README.md" or "docs/<topic>.md".
    name: The example's name in its mark.

  Returns:
    The block's text.
  """
  named = [block for block in blocks(page) if block.example_name == name]
  assert len(named) == 1, (
      f"{page} must hold exactly one example named {name!r}, found "
      f"{len(named)}")
  return named[0].code
