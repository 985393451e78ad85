"""The harness's exception types and the exit codes they mean.

A `ConfigError` names options through `flag(name)`; the edge that reports
it spells them: `--name` on the command line (`launch.main`,
`launch.local`), `name` from Python (`launch.fit`). How the command-line
tools print an error and exit is `launch.cli.errors`.
"""

# Marks an option's name inside a message; no user text holds it.
_MARK = "\x1f"
FLAG_SPELLING = "flags"  # --name
KEYWORD_SPELLING = "keywords"  # name


def flag(name: str) -> str:
  """An option's name inside a `ConfigError` message (`--name` or `name`).

  Write `f"{flag('learning_rate')}={value} must be positive."`.
  """
  return f"{_MARK}{name}{_MARK}"


def spell(template: str, spelling: str = FLAG_SPELLING) -> str:
  """`template` with each `flag(name)` written `--name` or `name`."""
  parts = template.split(_MARK)
  prefix = "--" if spelling == FLAG_SPELLING else ""
  parts[1::2] = [prefix + name for name in parts[1::2]]
  return "".join(parts)


class ConfigError(ValueError):
  """Bad input (options, data, model, TF_CONFIG, environment): exit code 2.

  The message is one sentence. Options in it are written `flag(name)`;
  `str()` spells them as flags (`--name`), `spelled(KEYWORD_SPELLING)`
  as `fit`'s keywords (`name`).

  Attributes:
    template: The message with the options marked.
    option: The option at fault (the first one named, unless given), or
      None when the message names no option.
    options: Every option the message names, in order.
    spelling: `FLAG_SPELLING` or `KEYWORD_SPELLING`.
  """

  def __init__(self, message: str, *, option: str | None = None,
               spelling: str = FLAG_SPELLING):
    self.template = message
    self.options = tuple(message.split(_MARK)[1::2])
    self.option = option or (self.options[0] if self.options else None)
    self.spelling = spelling
    super().__init__(spell(message, spelling))

  def __str__(self) -> str:
    return spell(self.template, self.spelling)

  def spelled(self, spelling: str) -> "ConfigError":
    """The same error, its options spelled for another caller."""
    return ConfigError(self.template, option=self.option, spelling=spelling)


class RunFailed(RuntimeError):
  """The run failed (non-finite loss, dead peer, unloadable checkpoints).

  Exit code 1. `peer_failure` is True when a peer worker or a collective
  failed, after which TensorFlow's teardown may block.
  """

  def __init__(self, message: str, *, peer_failure: bool = False):
    super().__init__(message)
    self.peer_failure = peer_failure


class StorageError(RunFailed):
  """A directory of the run filled up, turned read-only or was removed.

  Exit code 3. The message is one sentence naming the path, the cause (no
  space left, read-only, removed) and the fix; the last complete checkpoint
  is intact, so rerunning the same command once the storage is fixed
  resumes from it. `path` and `cause` hold the two facts.
  """

  def __init__(self, message: str, *, path: str = "", cause: str = ""):
    super().__init__(message)
    self.path = path
    self.cause = cause


class Preempted(RuntimeError):
  """Stopped by SIGTERM/SIGUSR1 (or on request) after saving at `step`.

  Exit code 42: relaunch with the same model_dir to resume.
  """

  def __init__(self, message: str, step: int | None = None):
    super().__init__(message)
    self.step = step


EXIT_BAD_INPUT = 2
EXIT_RUN_FAILED = 1
EXIT_STORAGE = 3  # model_dir full, read-only or removed; resumable.
EXIT_PREEMPTED = 42  # Saved at a loop boundary after SIGTERM/SIGUSR1.
