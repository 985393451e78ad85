"""The command line and the terminal: flags, `--help`, log format, TensorFlow's start-up noise."""
