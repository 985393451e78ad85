"""`from_image_directory`: a directory of class subfolders of images.

The layout is the one `keras.utils.image_dataset_from_directory` reads:

  path/cat/001.jpg, path/cat/002.png, ..., path/dog/001.jpg, ...

Class names are the subfolders sorted alphabetically (label = index). The
sorted file list is held in memory, so the source is indexable (exact
resume, replica-independent batches); each file is read, decoded and
resized in the pipeline's parallel map.
"""

import os

import numpy as np

from datasets import labels as labels_lib
from datasets import source as source_lib
from datasets.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
COLOR_MODES = {"rgb": 3, "grayscale": 1}
DEFAULT_IMAGE_SIZE = (256, 256)


class ImageFiles:
  """Image paths and labels; see `source_lib.IndexedData`."""

  def __init__(self, paths, labels, class_names, *, image_size, channels,
               scale, preprocess=None):
    self.paths, self.labels = paths, labels
    self.class_names = class_names
    self.image_size, self.channels, self.scale = image_size, channels, scale
    self.preprocess = preprocess
    self.takes_seed = (preprocess is not None
                       and source_lib.preprocess_takes_seed(preprocess))
    self.num_examples = len(paths)
    self.input_shape = (*image_size, channels)
    self.num_classes = len(class_names)
    self.task = "classification"
    self.input_format = {"kind": "images", "image_size": list(image_size),
                         "channels": channels}

  def take(self, rows: slice) -> "ImageFiles":
    return ImageFiles(self.paths[rows], self.labels[rows], self.class_names,
                      image_size=self.image_size, channels=self.channels,
                      scale=self.scale, preprocess=self.preprocess)

  def statistics(self):
    return None

  def describe(self) -> str:
    done = ("pixels 0..255 not rescaled" if self.scale == 1.0 else
            f"pixels scaled by {source_lib.format_scale(self.scale)}")
    return (f"{source_lib.format_count(self.num_examples)} images resized to"
            f" {source_lib.format_shape(self.input_shape)} ({done}),"
            f" {self.num_classes} classes"
            f" ({labels_lib.format_names(self.class_names)})")

  def open(self):
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from datasets import pipeline  # pylint: disable=import-outside-toplevel
    paths = tf.constant(self.paths)
    labels = tf.constant(self.labels)

    def load_example(row, seed):
      data = tf.io.read_file(paths[row])
      image = tf.io.decode_image(data, channels=self.channels,
                                 expand_animations=False)
      image = tf.image.resize(image, self.image_size, method="bilinear")
      image.set_shape(self.input_shape)
      if self.scale != 1.0:
        image = image * self.scale
      label = labels[row]
      if self.preprocess is None:
        return image, label
      return tuple(source_lib.apply_preprocess(
          self.preprocess, self.takes_seed, image, label, seed))

    return pipeline.Loader(load_example=load_example)


def _list_images(path: str):
  """(sorted class names, sorted paths, labels)."""
  if not os.path.isdir(path):
    raise DataError(f"{path} is not a directory of class subfolders.")
  class_names = sorted(entry.name for entry in os.scandir(path)
                       if entry.is_dir() and not entry.name.startswith("."))
  if not class_names:
    raise DataError(f"{path} has no class subfolders; put the images of"
                    " each class in a subfolder named after it.")
  paths, labels = [], []
  for label, class_name in enumerate(class_names):
    for root, dirs, files in os.walk(os.path.join(path, class_name)):
      dirs.sort()
      for file_name in sorted(files):
        if file_name.lower().endswith(IMAGE_EXTENSIONS):
          paths.append(os.path.join(root, file_name))
          labels.append(label)
  if not paths:
    raise DataError(f"the class subfolders of {path} hold no images ending"
                    f" in {', '.join(IMAGE_EXTENSIONS)}.")
  order = sorted(range(len(paths)), key=lambda i: (labels[i], paths[i]))
  return (class_names, np.array([paths[i] for i in order]),
          np.array([labels[i] for i in order], np.int32))


def from_image_directory(path: str, *, image_size=DEFAULT_IMAGE_SIZE,
                         color_mode: str = "rgb", scale: float | None = None,
                         preprocess=None, name: str | None = None,
                         shuffle: bool = True) -> source_lib.IndexedSource:
  """Images in class subfolders as one split.

  Class names are the subfolder names sorted alphabetically; label `i` is
  the `i`-th class (exposed as `class_names`). Files ending in png, jpg,
  jpeg, bmp or gif (first frame) are listed in sorted order and held in
  memory; the pipeline reads, decodes and resizes each (bilinear, as
  Keras) in its parallel map. Pixels 0..255 are scaled by 1/255 by default,
  as `description` says; `scale=1.0` keeps them.

  Args:
    path: The directory of class subfolders.
    image_size: (height, width) after resizing.
    color_mode: "rgb" (3 channels) or "grayscale" (1).
    scale: Factor for the float32 pixels; None: 1/255.
    preprocess: As in `from_arrays`, applied after resizing and scaling.
    name: Name for logs; default the directory name.
    shuffle: Whether training epochs are shuffled.

  Returns:
    An indexable Source with a `class_names` attribute.

  Raises:
    DataError: If the directory, its subfolders or the options are unusable.
  """
  path = os.fspath(path)
  if color_mode not in COLOR_MODES:
    raise DataError(f"color_mode={color_mode!r} must be one of"
                    f" {', '.join(COLOR_MODES)}.")
  try:
    height, width = (int(n) for n in image_size)
  except (TypeError, ValueError):
    raise DataError(f"image_size={image_size!r} must be (height,"
                    " width).") from None
  if height < 1 or width < 1:
    raise DataError(f"image_size={image_size!r} must be positive.")
  class_names, paths, labels = _list_images(path)
  data = ImageFiles(paths, labels, class_names, image_size=(height, width),
                    channels=COLOR_MODES[color_mode],
                    scale=1 / 255 if scale is None else float(scale),
                    preprocess=preprocess)
  return source_lib.IndexedSource(
      data, name=name or os.path.basename(os.path.normpath(path)),
      shuffle=shuffle, feature_scale=data.scale)
