"""`--help` of the harness's command-line tools: their own flags, grouped.

absl's `--help` lists only the flags of the `__main__` module (the harness
defines them in `launch.cli.flags`) and `--helpfull` starts with absl's own.
This renders instead: a usage line; the `__main__` module's docstring (as
absl's usage does); the flags of the program's own modules, grouped by their
`.group` attribute in the order the groups first appear; the docstring's
"Exit codes" paragraph; notes. It imports nothing heavy: `--help` must not
wait for TensorFlow.
"""

import inspect
import os
import re
import shutil
import sys
import textwrap
from typing import Iterable, Sequence

from absl import flags

# Arguments that ask for help, and how much: "short" lists the program's
# own flags, "full" also absl's.
HELP_ARGS = {"-h": "short", "-?": "short", "--help": "short",
             "-help": "short", "--helpshort": "short", "-helpshort": "short",
             "--helpfull": "full", "-helpfull": "full"}

_LIBRARY_MODULES = ("absl.",)  # Flags of these are absl's own.
_PROGRAM_PREFIX = re.compile(r"^`[^`]+`:\s*")  # "`python -m x`: Does..."
_MAX_WIDTH = 100  # Wider lines are hard to read, even on a wide terminal.
_MIN_WIDTH = 40  # Narrower, the help would be a column of single words.
_HELP_INDENT = " " * 6

FlagSection = tuple[str, list[flags.Flag]]


def help_requested(args: Sequence[str]) -> str | None:
  """The help `args` ask for: "short", "full" or None (none before `--`)."""
  for arg in args:
    if arg == "--":
      return None
    if arg in HELP_ARGS:
      return HELP_ARGS[arg]
  return None


def program_name() -> str:
  """How the running program was started, e.g. `python -m launch`."""
  spec = getattr(sys.modules.get("__main__"), "__spec__", None)
  if spec is not None and spec.name:
    return f"python -m {spec.name.removesuffix('.__main__')}"
  script = sys.argv[0] if sys.argv and sys.argv[0] else "python"
  if script.endswith(".py"):
    return f"python {script}"
  return os.path.basename(script)  # A console script such as `tfharness`.


def flag_sections(flag_values: flags.FlagValues, *, ungrouped: str = "flags",
                  own: bool = True) -> list[FlagSection]:
  """The flags of the program's own modules (else absl's), grouped.

  Args:
    flag_values: Where the flags are defined.
    ungrouped: The header of flags without a `.group` attribute; with
      `own=False`, flags are grouped by their absl module instead.
    own: The program's flags, or absl's own.

  Returns:
    (header, flags) pairs, in the order the headers first appear.
  """
  sections: dict[str, list[flags.Flag]] = {}
  seen = set()
  for module, module_flags in flag_values.flags_by_module_dict().items():
    is_absl = module.startswith(_LIBRARY_MODULES)
    if is_absl == own:
      continue
    for flag in module_flags:
      if flag.name in seen:
        continue
      seen.add(flag.name)
      header = getattr(flag, "group", None) or (ungrouped if own else module)
      sections.setdefault(header, []).append(flag)
  return list(sections.items())


def _default_text(flag: flags.Flag) -> str:
  value = flag.default
  if value is None:
    return " (no default)"
  if isinstance(value, bool):
    return f"={str(value).lower()}"
  if isinstance(value, (list, tuple)):
    return "=" + ",".join(str(item) for item in value)
  return f"={value}"


def _wrap(text: str, width: int, indent: str = "",
          first_indent: str | None = None) -> list[str]:
  return textwrap.wrap(
      " ".join(text.split()), width,
      initial_indent=indent if first_indent is None else first_indent,
      subsequent_indent=indent, break_on_hyphens=False)


def _format_flag(flag: flags.Flag, width: int) -> list[str]:
  lines = _wrap(f"--{flag.name}{_default_text(flag)}", width,
                indent=_HELP_INDENT, first_indent="  ")
  if flag.help:
    lines += _wrap(flag.help, width, indent=_HELP_INDENT)
  return lines


def _split_doc(doc: str | None) -> tuple[list[str], list[str]]:
  """A docstring's paragraphs: (the description, its "Exit codes" ones)."""
  text = _PROGRAM_PREFIX.sub("", inspect.cleandoc(doc or ""))
  text = text[:1].upper() + text[1:]
  paragraphs = [paragraph for paragraph in re.split(r"\n\s*\n", text)
                if paragraph.strip()]
  description = [p for p in paragraphs if not p.startswith("Exit codes")]
  exit_codes = [p for p in paragraphs if p.startswith("Exit codes")]
  return description, exit_codes


def _format_paragraph(paragraph: str, width: int) -> list[str]:
  if any(line.startswith(" ") for line in paragraph.splitlines()):
    return paragraph.splitlines()  # An example: kept as written.
  return _wrap(paragraph, width)


def format_help(*, program: str, doc: str | None,
                sections: Iterable[FlagSection],
                notes: Iterable[str] = (), width: int = 80) -> str:
  """The help text.

  Args:
    program: How the program is started, for the usage line.
    doc: The program's docstring: a first line "`program`: does X" (the
      prefix is dropped), paragraphs, examples indented, and an optional
      paragraph starting "Exit codes" that goes after the flags.
    sections: (header, flags) pairs, as `flag_sections` returns them.
    notes: Sentences for the end, after the exit codes.
    width: No line is longer, except an indented example of `doc`.

  Returns:
    The text, lines separated by newlines, ending in one.
  """
  description, exit_codes = _split_doc(doc)
  blocks = [[f"usage: {program} [--flag=value ...]"]]
  blocks += [_format_paragraph(p, width) for p in description]
  for header, section_flags in sections:
    block = [f"{header}:"]
    for flag in section_flags:
      block += _format_flag(flag, width)
    blocks.append(block)
  blocks += [_format_paragraph(p, width) for p in exit_codes]
  notes = [line for note in notes for line in _wrap(note, width)]
  if notes:
    blocks.append(notes)
  return "\n\n".join("\n".join(block) for block in blocks) + "\n"


def print_help(flag_values: flags.FlagValues = flags.FLAGS, *,
               full: bool = False, doc: str | None = None,
               program: str | None = None, ungrouped: str = "flags",
               notes: Sequence[str] | None = None) -> None:
  """Prints the help of the running program to stdout.

  Args:
    flag_values: Where the program's flags are defined.
    full: Also list absl's own flags (`--helpfull`).
    doc: The program's docstring; default: that of `__main__`.
    program: How it is started; default: `program_name()`.
    ungrouped: The header of the flags without a `.group`.
    notes: Sentences for the end; default: how to read flags from a file
      and, unless `full`, that `--helpfull` lists absl's flags too.
  """
  if doc is None:
    doc = getattr(sys.modules.get("__main__"), "__doc__", None)
  sections = flag_sections(flag_values, ungrouped=ungrouped)
  if full:
    sections += flag_sections(flag_values, own=False)
  if notes is None:
    notes = ["--flagfile=FILE reads flags from a file, one per line."]
    if not full:
      notes.append("--helpfull also lists absl's own flags (logging,"
                   " debugging).")
  columns = shutil.get_terminal_size(fallback=(80, 24)).columns
  width = max(_MIN_WIDTH, min(columns, _MAX_WIDTH))
  text = format_help(program=program or program_name(), doc=doc,
                     sections=sections, notes=notes, width=width)
  try:
    sys.stdout.write(text)
    sys.stdout.flush()
  except BrokenPipeError:  # `--help | head`: the reader has gone.
    # Else the interpreter's final flush fails again, with a traceback.
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
