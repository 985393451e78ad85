"""The edge of the harness, and its public entry point `launch.fit`.

Only this package reads flags or the environment. It imports `trainer` and
`datasets`, never the other way round, and imports TensorFlow only after the
options, the cluster and the data were validated.
"""

from launch.api import fit  # noqa: F401  The public API.
