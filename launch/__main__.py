"""`python -m launch`; `--help` shows `launch.main`'s docstring."""

from launch import main  # pylint: disable=g-import-not-at-top

__doc__ = main.__doc__  # pylint: disable=redefined-builtin
main.run()
