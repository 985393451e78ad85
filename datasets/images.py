"""`from_image_directory`: a directory of class subfolders of images.

The layout is the one `keras.utils.image_dataset_from_directory` reads:

  path/cat/001.jpg, path/cat/002.png, ..., path/dog/001.jpg, ...

Class names are the subfolders sorted alphabetically (label = index). The
sorted file list is held in memory, so the source is indexable (exact
resume, replica-independent batches); each file is read, decoded and
resized in the pipeline's parallel map. While listing, every file's first
and last bytes are checked (`datasets.image_check`): an unreadable file is
named at once, or skipped and counted with `skip_unreadable=True`.
"""

import os
import re

import numpy as np

from datasets import labels as labels_lib
from datasets import image_check
from datasets import source as source_lib
from datasets.config import DEFAULT_IMAGE_SIZE
from datasets.errors import DataError, argument

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
COLOR_MODES = {"rgb": 3, "grayscale": 1}
_NAMES_SHOWN = 3
# TensorFlow errors of reading or decoding a file (the ops' names or texts).
_FILE_ERROR = re.compile(r"DecodeImage|ReadFile|image file format|Invalid"
                         r" (JPEG|PNG|GIF)|jpeg::|Input is empty|bmp|No such"
                         r" file", re.IGNORECASE)


def decode(data, channels: int):
  """uint8 [height, width, channels] of an encoded image (first GIF frame).

  TensorFlow decodes GIF, BMP and WebP files to 3 channels (or 4) only:
  in grayscale they are decoded as RGB and converted.
  """
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  if channels != 1:
    return tf.io.decode_image(data, channels=channels,
                              expand_animations=False)
  magic = tf.strings.substr(data, 0, 2)
  return tf.cond(
      tf.reduce_any(tf.equal(magic, ["GI", "BM", "RI"])),
      lambda: tf.image.rgb_to_grayscale(tf.io.decode_image(
          data, channels=3, expand_animations=False)),
      lambda: tf.io.decode_image(data, channels=1, expand_animations=False))


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

  def take(self, rows) -> "ImageFiles":
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
      image = decode(tf.io.read_file(paths[row]), self.channels)
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

  def find_undecodable(self) -> dict[int, str]:
    """{row: TensorFlow's reason} of the files that fail to decode.

    Decodes every file in a parallel `tf.data` map (TensorFlow is running
    when this is called: after a pipeline failed).
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    paths = tf.constant(self.paths)
    decoded = tf.data.Dataset.range(self.num_examples).map(
        lambda row: (row, tf.shape(decode(tf.io.read_file(paths[row]),
                                          self.channels))),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
    good = {int(row) for rows, _ in decoded.ignore_errors().batch(4096)
            .as_numpy_iterator() for row in rows}
    reasons = {}
    for row in (r for r in range(self.num_examples) if r not in good):
      if not os.path.exists(self.paths[row]):
        reasons[row] = "it was removed after the files were listed"
        continue
      try:
        decode(tf.io.read_file(self.paths[row]), self.channels)
      except tf.errors.OpError as error:
        reasons[row] = _tensorflow_reason(error)
    return reasons

  def explain_failure(self, error: Exception) -> str | None:
    """Names the files behind a read or decode `error`; see `Source`."""
    if not _FILE_ERROR.search(str(error)):
      return None
    reasons = self.find_undecodable()
    if not reasons:
      return None
    named = _name_files(self.paths, reasons)
    if len(reasons) == 1:
      (row, reason), = reasons.items()
      return (f"the image file {self.paths[row]} cannot be read or decoded"
              f" by TensorFlow ({reason}); remove or replace it.")
    return (f"{len(reasons)} image files cannot be read or decoded by"
            f" TensorFlow: {named}; remove or replace them.")


def _tensorflow_reason(error: Exception) -> str:
  """TensorFlow's own words, without its node and device annotations."""
  text = str(getattr(error, "message", error))
  text = re.sub(r"\{\{[^}]*\}\}|\[\[[^]]*\]\]|\[Op:[^]]*\]( name:)?",
                "", text)
  lines = [line.strip() for line in text.splitlines() if line.strip()]
  return (lines[0] if lines else type(error).__name__).rstrip(".")


def _name_files(paths, reasons: dict[int, str]) -> str:
  """"a.jpg (reason), b.jpg (reason) and 3 more"."""
  rows = sorted(reasons)
  named = ", ".join(f"{paths[row]} ({reasons[row]})"
                    for row in rows[:_NAMES_SHOWN])
  more = len(rows) - _NAMES_SHOWN
  return named + (f" and {more} more" if more > 0 else "")


def _list_images(path: str):
  """(sorted class names, sorted paths, labels); dot-files are not listed."""
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
      # Hidden folders and files (.ipynb_checkpoints, macOS's ._name.jpg
      # resource forks) are not images of the class.
      dirs[:] = sorted(d for d in dirs if not d.startswith("."))
      for file_name in sorted(files):
        if (file_name.lower().endswith(IMAGE_EXTENSIONS)
            and not file_name.startswith(".")):
          paths.append(os.path.join(root, file_name))
          labels.append(label)
  if not paths:
    raise DataError(f"the class subfolders of {path} hold no images ending"
                    f" in {', '.join(IMAGE_EXTENSIONS)}.")
  order = sorted(range(len(paths)), key=lambda i: (labels[i], paths[i]))
  return (class_names, np.array([paths[i] for i in order]),
          np.array([labels[i] for i in order], np.int32))


list_class_images = _list_images  # For python -m launch.write_tfrecords.


def _drop_unreadable(path: str, paths, labels, skip_unreadable: bool):
  """(paths, labels, warnings) without the files `image_check` flags.

  Raises:
    DataError: Naming the unreadable files, unless `skip_unreadable`; or
      if every file is unreadable.
  """
  reasons = image_check.find_unreadable(paths)
  if not reasons:
    return paths, labels, ()
  named = _name_files(paths, reasons)
  if len(reasons) == len(paths):
    raise DataError(f"none of the {len(paths)} image files under {path} can"
                    f" be decoded: {named}; replace them with PNG, JPEG, GIF"
                    " or BMP images.")
  if not skip_unreadable:
    if len(reasons) == 1:
      (row, reason), = reasons.items()
      raise DataError(f"the image file {paths[row]} cannot be decoded:"
                      f" {reason}; remove or replace it, or pass"
                      f" {argument('skip_unreadable')}=True to skip unreadable"
                      " files.")
    raise DataError(f"{len(reasons)} of the {len(paths)} image files under"
                    f" {path} cannot be decoded: {named}; remove or replace"
                    f" them, or pass {argument('skip_unreadable')}=True to skip"
                    " them.")
  keep = np.ones(len(paths), bool)
  keep[list(reasons)] = False
  warning = (f"skipped {len(reasons)} unreadable image"
             f" file{'s' if len(reasons) > 1 else ''} under {path}: {named}.")
  return paths[keep], labels[keep], (warning,)


def _empty_class_warnings(path: str, class_names, labels) -> tuple[str, ...]:
  counts = np.bincount(labels, minlength=len(class_names))
  empty = [repr(name) for name, count in zip(class_names, counts)
           if not count]
  if not empty:
    return ()
  return (f"the class subfolders {', '.join(empty)} of {path} hold no"
          " readable images: these classes have no examples.",)


def from_image_directory(path: str, *, image_size=DEFAULT_IMAGE_SIZE,
                         color_mode: str = "rgb", scale: float | None = None,
                         preprocess=None, name: str | None = None,
                         shuffle: bool = True,
                         skip_unreadable: bool = False
                         ) -> source_lib.IndexedSource:
  """Images in class subfolders as one split.

  Class names are the subfolder names sorted alphabetically; label `i` is
  the `i`-th class (exposed as `class_names`). Files ending in png, jpg,
  jpeg, bmp or gif (first frame), in any letter case, are listed in
  sorted order and held in memory; files and folders whose names start
  with "." are not (e.g. macOS's `._name.jpg`). The pipeline reads,
  decodes and resizes each (bilinear, as Keras) in its parallel map.
  Pixels 0..255 are scaled by 1/255 by default, as `description` says;
  `scale=1.0` keeps them.

  While listing, the first and last bytes of every file are read: an
  empty file, a file that is no PNG, JPEG, GIF or BMP, or a truncated one
  raises `DataError` naming it, or, with `skip_unreadable=True`, is left
  out, counted in `description` and named in `warnings` (the run logs
  both). A file damaged inside fails in the pipeline; a run then names it.
  `validation_split` is seeded and stratified by class (see
  `datasets.splits`).

  Args:
    path: The directory of class subfolders.
    image_size: (height, width) after resizing.
    color_mode: "rgb" (3 channels) or "grayscale" (1).
    scale: Factor for the float32 pixels; None: 1/255.
    preprocess: As in `from_arrays`, applied after resizing and scaling.
    name: Name for logs; default the directory name.
    shuffle: Whether training epochs are shuffled.
    skip_unreadable: Leave out unreadable files instead of raising.

  Returns:
    An indexable Source with a `class_names` attribute.

  Raises:
    DataError: If the directory, its subfolders, its files or the options
      are unusable.
  """
  path = os.fspath(path)
  if color_mode not in COLOR_MODES:
    raise DataError(f"color_mode={color_mode!r} must be one of"
                    f" {', '.join(COLOR_MODES)}.")
  try:
    height, width = (int(n) for n in image_size)
  except (TypeError, ValueError):
    raise DataError(f"{argument('image_size')}={image_size!r} must be (height,"
                    " width).") from None
  if height < 1 or width < 1:
    raise DataError(f"{argument('image_size')}={image_size!r} must be"
                    " positive.")
  class_names, paths, labels = _list_images(path)
  listed = len(paths)
  paths, labels, warnings = _drop_unreadable(path, paths, labels,
                                             skip_unreadable)
  data = ImageFiles(paths, labels, class_names, image_size=(height, width),
                    channels=COLOR_MODES[color_mode],
                    scale=1 / 255 if scale is None else float(scale),
                    preprocess=preprocess)
  source = source_lib.IndexedSource(
      data, name=name or os.path.basename(os.path.normpath(path)),
      shuffle=shuffle, feature_scale=data.scale, use_seeded_split=True,
      warnings=warnings + _empty_class_warnings(path, class_names, labels))
  if listed > len(paths):
    source.description += (f", {source_lib.format_count(listed - len(paths))}"
                           " unreadable files skipped")
  return source
