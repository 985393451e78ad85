"""The command line and the terminal: flags, `--help`, one-line errors and exit (`errors`), log format, TensorFlow's start-up noise."""
