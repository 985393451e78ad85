"""The README and docs/: every example run or marked, links whole, options generated."""

import glob
import os
import re
import types

import pytest

from launch.cli import reference
from launch.options import definitions
from tests.docs import examples
from tests.processes import REPO_ROOT

_CALL = re.compile(
    r"docs_example\(\s*[\"'](?P<page>[^\"']+)[\"']\s*,\s*[\"'](?P<name>[^\"']+)[\"']")
_LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(?P<title>.+?)\s*#*\s*$")


def _examples_taken_by_tests() -> set[tuple[str, str]]:
  """(page, name) of every `docs_example(...)` call in the tests."""
  taken = set()
  for path in glob.glob(os.path.join(REPO_ROOT, "tests", "**", "*.py"),
                        recursive=True):
    if path.endswith(os.path.join("docs", "examples.py")):
      continue
    with open(path, encoding="utf-8") as stream:
      taken.update((m.group("page"), m.group("name"))
                   for m in _CALL.finditer(stream.read()))
  return taken


def _user_examples():
  return [block for page in examples.pages()
          for block in examples.blocks(page)
          if block.language in examples.EXAMPLE_LANGUAGES]


def test_every_example_is_run_by_a_test_or_says_why_not():
  unmarked = [f"{b.page}:{b.line}" for b in _user_examples()
              if b.example_name is None and b.skip_reason is None]
  assert not unmarked, (
      "these examples are neither run by a test (<!-- example: NAME --> on "
      "the line above, taken by docs_example) nor marked <!-- not executed: "
      f"REASON -->: {unmarked}")
  taken = _examples_taken_by_tests()
  named = {(b.page, b.example_name) for b in _user_examples()
           if b.example_name}
  assert named - taken == set(), (
      f"no test takes these examples with docs_example: {named - taken}")
  assert taken - named == set(), (
      f"tests take examples the docs no longer hold: {taken - named}")


def test_example_names_are_unique_per_page():
  for page in examples.pages():
    names = [b.example_name for b in examples.blocks(page) if b.example_name]
    assert len(names) == len(set(names)), f"{page} repeats a name: {names}"


def test_marks_are_found_and_reasons_are_required():
  """The checker itself: an unmarked or reason-less block is caught."""
  block = examples.Block("x.md", 3, "sh", "<!-- not executed:  -->", "ls\n")
  assert block.skip_reason is None and block.example_name is None
  block = examples.Block("x.md", 3, "sh", "<!-- example: a-b -->", "ls\n")
  assert block.example_name == "a-b"


def _slug(title: str) -> str:
  """GitHub's anchor of a heading."""
  title = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", title)
  title = title.strip().lower()
  title = re.sub(r"[^\w\- ]", "", title)
  return title.replace(" ", "-")


def _anchors(page: str) -> set[str]:
  text = _without_code(examples.read_page(page))
  anchors, seen = set(), {}
  for line in text.split("\n"):
    match = _HEADING.match(line)
    if not match:
      continue
    slug = _slug(match.group("title"))
    count = seen.get(slug, 0)
    seen[slug] = count + 1
    anchors.add(slug if count == 0 else f"{slug}-{count}")
  return anchors


def _without_code(text: str) -> str:
  return re.sub(r"^[ \t]*```.*?^[ \t]*```[ \t]*$", "", text,
                flags=re.DOTALL | re.MULTILINE)


def test_slugs_follow_github():
  assert _slug("GPU memory: `--gpu_memory`") == "gpu-memory---gpu_memory"
  assert _slug("Interrupting `fit`") == "interrupting-fit"
  assert _slug("Local multi-worker runs: `python -m launch.local`") == (
      "local-multi-worker-runs-python--m-launchlocal")


def test_every_link_resolves():
  broken = []
  for page in examples.pages():
    for match in _LINK.finditer(_without_code(examples.read_page(page))):
      target = match.group("target")
      if re.match(r"[a-z]+:", target):
        continue  # https:, mailto: and the like.
      path, _, anchor = target.partition("#")
      resolved = (os.path.normpath(os.path.join(os.path.dirname(page), path))
                  if path else page)
      if not os.path.exists(os.path.join(REPO_ROOT, resolved)):
        broken.append(f"{page}: {target} (no file {resolved})")
      elif anchor and (not resolved.endswith(".md")
                       or anchor not in _anchors(resolved)):
        broken.append(f"{page}: {target} (no heading #{anchor})")
  assert not broken, broken


def test_every_page_is_on_the_readme_map():
  readme = examples.read_page("README.md")
  missing = [page for page in examples.pages()[1:]
             if f"]({page})" not in readme]
  assert not missing, f"the README's map of the docs lacks {missing}"


def test_readme_is_a_front_page_with_the_ci_test_command():
  readme = examples.read_page("README.md")
  assert len(readme.splitlines()) <= 150
  with open(os.path.join(REPO_ROOT, ".ci", "run"), encoding="utf-8") as ci:
    command = re.search(r'^TEST_COMMAND="(.*)"$', ci.read(), re.M).group(1)
  assert command in readme


def test_no_docs_folder_is_named_after_an_issue():
  folders = glob.glob(os.path.join(REPO_ROOT, "docs", "**", ""),
                      recursive=True)
  assert not [f for f in folders if re.search(r"issue", f, re.I)], folders


def test_options_page_is_generated_from_the_definitions():
  with open(os.path.join(REPO_ROOT, "docs", "options.md"),
            encoding="utf-8") as stream:
    page = stream.read()
  assert page == reference.render(), (
      "docs/options.md differs from the option definitions; regenerate it "
      "with: python -m launch.cli.reference > docs/options.md")


def test_reference_lists_every_option_with_its_default():
  page = reference.render()
  for option in definitions.OPTIONS:
    default = reference._value_text(definitions.default(option))  # pylint: disable=protected-access
    assert f"| `{option.name}` | {option.kind} | `{default}` |" in page


def test_reference_shows_the_facts_an_option_carries(monkeypatch):
  fake = definitions.Option(
      "fake_rate", "float", "model", "A rate | with a pipe.", "", default=0.5,
      bounds=definitions.Range(0, 1, high_open=True), changes_result=True,
      applies_to=definitions.BUILT_IN_ONLY, hparam="fake_rate")
  choice = definitions.Option("fake_choice", "str", "model", "Pick one.", "",
                              default="a", choices=("a", "b"))
  plain = definitions.Option("fake_plain", "str", "output", "Plain.", "",
                             default=None)
  monkeypatch.setattr(definitions, "OPTIONS", (fake, choice, plain))
  page = reference.render()
  assert ("| `fake_rate` | float | `0.5` | A rate \\| with a pipe. (in [0, 1);"
          " changes the result; built-in networks only; TensorBoard HParam"
          " `fake_rate`) |") in page
  assert "| `fake_choice` | str | `a` | Pick one. (one of `a,b`) |" in page
  assert "| `fake_plain` | str | `none` | Plain. |" in page


@pytest.mark.parametrize("name", ["help-80-columns.txt",
                                  "terminal-80-columns.txt"])
def test_captures_live_under_docs_images(name):
  assert os.path.isfile(os.path.join(REPO_ROOT, "docs", "images", name))
