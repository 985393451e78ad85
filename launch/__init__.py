"""The edge of the harness: flags and environment -> configs -> a run.

Only this package reads flags or the environment. It imports `trainer` and
`datasets`, never the other way round, and imports TensorFlow only after the
command line and the cluster were validated.
"""
