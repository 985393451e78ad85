"""`python -m launch.local`; `--help` shows `launch.local.launcher`'s docstring."""

from launch.local import launcher

__doc__ = launcher.__doc__  # pylint: disable=redefined-builtin
launcher.main()
