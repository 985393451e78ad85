"""The one error type a user's input can cause."""


class ConfigError(ValueError):
  """Bad flags, TF_CONFIG or environment: one sentence, exit code 2."""


EXIT_BAD_INPUT = 2
EXIT_RUN_FAILED = 1
EXIT_PREEMPTED = 42  # Saved at a loop boundary after SIGTERM/SIGUSR1.
