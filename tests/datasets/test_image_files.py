"""Unreadable image files: found while listing, named, or skipped, counted."""

import io
import os

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from datasets import DataError, from_image_directory, image_check
from tests.datasets.helpers import eval_batches, global_steps

_PIXELS = np.random.default_rng(0).integers(0, 256, (9, 7, 3), np.uint8)


def encode(kind: str, mode: str = "RGB", **options) -> bytes:
  """An image as a user's tool (Pillow) saves it."""
  stream = io.BytesIO()
  Image.fromarray(_PIXELS).convert(mode).save(stream, kind, **options)
  return stream.getvalue()


def _cases():
  jpeg, png, gif, bmp = (encode(kind) for kind in ("JPEG", "PNG", "GIF",
                                                   "BMP"))
  return {
      "ok.jpg": jpeg, "progressive.jpg": encode("JPEG", progressive=True),
      "trailing.jpg": jpeg + b"\0" * 64 + b"camera notes",
      "ok.png": png, "gray.png": encode("PNG", "L"), "trailing.png": png + b"x",
      "ok.gif": gif, "no_trailer.gif": gif[:-1], "ok.bmp": bmp,
      "gray.bmp": encode("BMP", "L"), "rgba.bmp": encode("BMP", "RGBA"),
      "empty.jpg": b"", "text.jpg": b"<html>404 Not Found</html>\n",
      "half.jpg": jpeg[:len(jpeg) // 2], "no_eoi.jpg": jpeg[:-2],
      "half.png": png[:len(png) // 2], "no_iend.png": png[:-12],
      "half.gif": gif[:len(gif) // 2], "half.bmp": bmp[:-7],
      "longer.bmp": bmp + b"xx", "one_bit.bmp": encode("BMP", "1"),
      "webp_named.jpg": encode("WEBP"), "tiff_named.jpg": encode("TIFF"),
  }


@pytest.mark.parametrize("name", sorted(_cases()))
def test_listing_check_agrees_with_tensorflow(tmp_path, name):
  path = tmp_path / name
  path.write_bytes(_cases()[name])
  try:
    tf.io.decode_image(tf.io.read_file(str(path)), channels=3,
                       expand_animations=False)
    decodes = True
  except tf.errors.InvalidArgumentError:
    decodes = False
  reason = image_check.unreadable_reason(str(path))
  assert (reason is None) == decodes, reason
  expected_bad = name.split(".")[0] in ("empty", "text", "half", "no_eoi",
                                        "no_iend", "longer", "one_bit",
                                        "tiff_named")
  assert decodes != expected_bad


@pytest.fixture()
def folders(tmp_path):
  """Two classes of mixed PNG/JPEG files, as a user's folder looks."""
  root = tmp_path / "pets"
  for name in ("cat", "dog"):
    (root / name).mkdir(parents=True)
    for index in range(6):
      kind = "PNG" if index % 2 else "JPEG"
      (root / name / f"{index}.{kind.lower()}").write_bytes(encode(kind))
  return root


def test_a_corrupt_file_is_named_while_listing(folders):
  (folders / "dog" / "notes.jpg").write_text("not an image\n")
  with pytest.raises(DataError) as raised:
    from_image_directory(str(folders), image_size=(4, 4))
  assert str(raised.value) == (
      f"the image file {folders / 'dog' / 'notes.jpg'} cannot be decoded: it"
      " is no PNG, JPEG, GIF or BMP image but starts with b'not an i';"
      " remove or replace it, or pass skip_unreadable=True to skip"
      " unreadable files.")


def _break_three(folders):
  (folders / "cat" / "empty.png").write_bytes(b"")
  truncated = encode("JPEG")
  (folders / "dog" / "cut.jpeg").write_bytes(truncated[:len(truncated) // 3])
  (folders / "dog" / "readme.jpg").write_text("a text file renamed .jpg")


def test_several_unreadable_files_are_counted_and_named(folders):
  _break_three(folders)
  with pytest.raises(DataError, match=(
      r"^3 of the 15 image files under .*pets cannot be decoded: .*empty.png"
      r" \(it is empty\), .*cut.jpeg \(it is a truncated JPEG, without its"
      r" end-of-image marker\), .*readme.jpg \(it is no PNG.*; remove or"
      r" replace them, or pass skip_unreadable=True to skip them\.$")):
    from_image_directory(str(folders), image_size=(4, 4))


def test_skip_unreadable_skips_counts_and_serves_the_rest(folders):
  _break_three(folders)
  source = from_image_directory(str(folders), image_size=(4, 4),
                                skip_unreadable=True)
  assert source.num_examples == 12
  assert source.description.endswith(", 3 unreadable files skipped")
  warning, = source.warnings
  assert warning.startswith(f"skipped 3 unreadable image files under"
                            f" {folders}: {folders / 'cat' / 'empty.png'}")
  (x, y), = global_steps(source, 1, global_batch_size=12)
  assert x.shape == (12, 4, 4, 3) and sorted(y.tolist()) == [0] * 6 + [1] * 6
  # The split keeps the warning and counts what is left.
  train, held_out = source.split(0.5, seed=0)
  assert held_out.warnings == (warning,) and train.num_examples == 6


def test_no_readable_file_at_all_is_one_sentence(tmp_path):
  (tmp_path / "a").mkdir()
  (tmp_path / "a" / "x.png").write_bytes(b"")
  with pytest.raises(DataError, match=r"^none of the 1 image files under"):
    from_image_directory(str(tmp_path), skip_unreadable=True)


def test_hidden_files_are_ignored_and_upper_case_is_read(folders):
  (folders / "cat" / "._0.jpeg").write_bytes(b"\0\5\26\7 macOS resource fork")
  (folders / "cat" / ".ipynb_checkpoints").mkdir()
  (folders / "cat" / ".ipynb_checkpoints" / "0-checkpoint.png").write_bytes(
      encode("PNG"))
  (folders / ".cache").mkdir()
  (folders / "dog" / "SHOUT.JPG").write_bytes(encode("JPEG"))
  source = from_image_directory(str(folders), image_size=(4, 4))
  assert source.class_names == ["cat", "dog"]
  assert source.num_examples == 13 and source.warnings == ()
  assert str(folders / "dog" / "SHOUT.JPG") in source.data.paths.tolist()


def test_grayscale_reads_gif_bmp_and_webp(tmp_path):
  # TensorFlow decodes GIF, BMP and WebP to 3 (or 4) channels only.
  names = {"GIF": "x.gif", "BMP": "x.bmp", "PNG": "x.png", "JPEG": "x.jpeg",
           "WEBP": "webp.jpg"}  # A WebP named .jpg decodes too.
  for folder in ("a", "b"):
    (tmp_path / folder).mkdir()
    for kind, name in names.items():
      (tmp_path / folder / name).write_bytes(encode(kind))
  source = from_image_directory(str(tmp_path), image_size=(9, 7),
                                color_mode="grayscale", scale=1.0)
  _, ([(x, _)],) = eval_batches(source, global_batch_size=10, padded=False)
  assert x.shape == (10, 9, 7, 1)  # In the order of source.data.paths.
  gray = np.asarray(Image.fromarray(_PIXELS).convert("L"), np.float32)
  by_name = dict(zip([os.path.basename(p) for p in source.data.paths],
                     x[:, :, :, 0]))
  # GIF has a 256-color palette, JPEG and WebP are lossy: close to gray.
  for name, tolerance in (("x.bmp", 0.75), ("x.png", 0.75), ("x.gif", 20),
                          ("x.jpeg", 20), ("webp.jpg", 20)):
    assert np.abs(by_name[name] - gray).mean() < tolerance, name


def test_an_rgb_run_reads_grayscale_rgba_and_palette_files(tmp_path):
  (tmp_path / "a").mkdir()
  for name, data in (("gray.png", encode("PNG", "L")),
                     ("rgba.png", encode("PNG", "RGBA")),
                     ("palette.gif", encode("GIF", "P")),
                     ("cmyk.jpg", encode("JPEG", "CMYK")),
                     ("gray.bmp", encode("BMP", "L"))):
    (tmp_path / "a" / name).write_bytes(data)
  source = from_image_directory(str(tmp_path), image_size=(9, 7), scale=1.0)
  _, ([(x, _)],) = eval_batches(source, global_batch_size=5, padded=False)
  assert x.shape == (5, 9, 7, 3)  # In the order of source.data.paths.
  rows = dict(zip([os.path.basename(p) for p in source.data.paths], x))
  gray = np.asarray(Image.fromarray(_PIXELS).convert("L"), np.float32)
  for name in ("gray.png", "gray.bmp"):  # Gray repeated in 3 channels.
    np.testing.assert_array_equal(rows[name], np.repeat(gray[..., None], 3,
                                                        axis=2))
  np.testing.assert_array_equal(rows["rgba.png"], _PIXELS)


def test_damage_inside_a_file_is_named_when_decoding(folders):
  damaged = bytearray(encode("PNG"))
  damaged[16:24] = b"\0" * 8  # Width and height zero: the ends look whole.
  path = folders / "cat" / "3.png"
  path.write_bytes(bytes(damaged))
  source = from_image_directory(str(folders), image_size=(4, 4))
  train, held_out = source.split(0.25, seed=0)
  part = train if str(path) in train.data.paths.tolist() else held_out
  with pytest.raises(tf.errors.InvalidArgumentError) as raised:
    global_steps(part, part.num_examples, global_batch_size=1)
  assert str(path) not in str(raised.value)  # TensorFlow does not say.
  sentence = part.explain_failure(raised.value)
  assert sentence.startswith(f"the image file {path} cannot be read or"
                             " decoded by TensorFlow (")
  assert sentence.endswith("); remove or replace it.")
  other = held_out if part is train else train
  assert other.explain_failure(raised.value) is None
  assert part.explain_failure(ValueError("labels out of range")) is None


def test_a_file_removed_after_listing_is_named(folders):
  source = from_image_directory(str(folders), image_size=(4, 4))
  os.remove(folders / "dog" / "4.jpeg")
  with pytest.raises(tf.errors.NotFoundError) as raised:
    global_steps(source, 3, global_batch_size=4)
  assert source.explain_failure(raised.value) == (
      f"the image file {folders / 'dog' / '4.jpeg'} cannot be read or decoded"
      " by TensorFlow (it was removed after the files were listed); remove"
      " or replace it.")


def test_an_empty_class_folder_is_a_warning_and_counted(folders):
  (folders / "eel").mkdir()
  (folders / "eel" / "broken.png").write_bytes(b"")
  source = from_image_directory(str(folders), image_size=(4, 4),
                                skip_unreadable=True)
  assert source.num_classes == 3 and source.class_names[2] == "eel"
  assert source.warnings[1] == (
      f"the class subfolders 'eel' of {folders} hold no readable images:"
      " these classes have no examples.")
  _, held_out = source.split(0.25, seed=0)
  assert held_out.description.startswith("3 held-out examples (2 of 3")
