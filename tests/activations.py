"""Reference activations in numpy, to check exported probabilities."""

import numpy as np


def softmax(logits):
  shifted = logits - logits.max(axis=1, keepdims=True)
  return np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)


def sigmoid(logits):
  return 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
