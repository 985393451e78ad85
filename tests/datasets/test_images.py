"""from_image_directory: classes, decoding, resizing, scaling, resume."""

import numpy as np
import pytest
import tensorflow as tf

from datasets import DataError, from_image_directory
from tests.datasets.helpers import (assert_steps_equal, eval_batches,
                                    global_steps)


def write_image(path, value, size=(6, 4), channels=3):
  pixels = tf.fill((*size, channels), tf.constant(value, tf.uint8))
  encoded = (tf.io.encode_png(pixels) if str(path).endswith(".png")
             else tf.io.encode_jpeg(pixels, quality=100))
  tf.io.write_file(str(path), encoded)


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("images")
  for label, class_name in enumerate(["cat", "dog", "eel"]):
    (root / class_name).mkdir()
    for index in range(3):
      # The pixel value encodes (class, index): 10 * label + index + 1.
      write_image(root / class_name / f"{index}.png", 10 * label + index + 1)
  (root / "dog" / "notes.txt").write_text("not an image")
  return root


def test_classes_shapes_scaling_and_description(image_dir):
  source = from_image_directory(str(image_dir), image_size=(5, 5))
  assert source.class_names == ["cat", "dog", "eel"]
  assert source.num_examples == 9 and source.num_classes == 3
  assert source.input_shape == (5, 5, 3)
  assert "9 images resized to 5x5x3 (pixels scaled by 1/255)" in (
      source.description)
  (x, y), = global_steps(source, 1, global_batch_size=9)
  assert x.shape == (9, 5, 5, 3) and x.dtype == np.float32
  values = np.round(x[:, 0, 0, 0] * 255).astype(int)
  np.testing.assert_array_equal(values // 10, y)  # Label matches its folder.
  assert sorted(values.tolist()) == [1, 2, 3, 11, 12, 13, 21, 22, 23]


def test_grayscale_unscaled(image_dir):
  source = from_image_directory(str(image_dir), image_size=(3, 2),
                                color_mode="grayscale", scale=1.0)
  assert source.input_shape == (3, 2, 1) and "not rescaled" in (
      source.description)
  (x, _), = global_steps(source, 1, global_batch_size=3)
  assert x.max() > 1.0


def test_resume_replicas_and_eval(image_dir):
  source = from_image_directory(str(image_dir), image_size=(2, 2))
  full = global_steps(source, 6, global_batch_size=4)
  assert_steps_equal(global_steps(source, 2, global_batch_size=4,
                                  start_step=4), full[4:])
  assert_steps_equal(global_steps(source, 6, global_batch_size=4,
                                  pipelines=2, replicas=4), full)
  _, (batches,) = eval_batches(source, global_batch_size=4, replicas=2,
                               padded=False)
  assert sorted(int(v) for x, _ in batches
                for v in np.round(x[:, 0, 0, 0] * 255)) == [
                    1, 2, 3, 11, 12, 13, 21, 22, 23]


def test_bad_directories_are_one_sentence(tmp_path):
  with pytest.raises(DataError, match="is not a directory"):
    from_image_directory(str(tmp_path / "missing"))
  (tmp_path / "flat.png").write_bytes(b"")
  with pytest.raises(DataError, match="has no class subfolders"):
    from_image_directory(str(tmp_path))
  (tmp_path / "cat").mkdir()
  with pytest.raises(DataError, match="hold no images"):
    from_image_directory(str(tmp_path))
  with pytest.raises(DataError, match="color_mode='cmyk'"):
    from_image_directory(str(tmp_path), color_mode="cmyk")
