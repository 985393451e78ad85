"""Input pipelines: array sources and `tf.data` pipelines for `tf.distribute`.

This package never reads flags and never imports `launch` or `trainer`. Only
`datasets.pipeline` imports TensorFlow, so the config and sources load fast.
"""
