"""The edge of the harness, and its public entry point `launch.fit`.

Only this package reads flags or the environment. It imports `trainer` and
`datasets`, never the other way round, and imports TensorFlow only after the
options and the cluster were validated (before the data is loaded: a user's
data or model module may import it, and its start-up lines are filtered).
"""

from launch.api import fit  # noqa: F401  The public API.
