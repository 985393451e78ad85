"""Which image files cannot be decoded, told cheaply in plain Python.

`unreadable_reason(path)` reads the first and the last bytes of a file and
says why TensorFlow's `decode_image` would fail on it, or None:

* empty files, and files that are not PNG, JPEG, GIF or BMP by their magic
  bytes (a text or HTML page saved as `.jpg`);
* truncated files: a JPEG must end with its end-of-image marker (FF D9), a
  PNG with its IEND chunk, a GIF with its trailer (3B); a file that does
  not is walked through its structure (only these rare files are read
  whole), since data after the end is allowed and decodes;
* BMPs whose size does not match their header, or whose pixel depth
  TensorFlow cannot decode (it reads uncompressed 8, 24 and 32 bits only).

No TensorFlow here: the check runs while the files are listed, before the
runtime starts. Damage in the middle of a file can still fail in the
pipeline; `find_undecodable` (TensorFlow) names those files then.
"""

from concurrent import futures
import struct

_PNG = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_JPEG = b"\xff\xd8\xff"
_JPEG_END = b"\xff\xd9"
_GIF = (b"GIF87a", b"GIF89a")
_BMP = b"BM"
_HEAD, _TAIL = 32, 16
# Listing many files on a network file system is latency-bound: threads
# overlap the opens (the check's Python work is small).
_THREADS = 8


def _walk_png(data: bytes) -> bool:
  """Whether the chunks reach IEND inside the file."""
  position = len(_PNG)
  while position + 8 <= len(data):
    length, kind = struct.unpack(">I4s", data[position:position + 8])
    position += 12 + length
    if position > len(data):
      return False
    if kind == b"IEND":
      return True
  return False


def _walk_jpeg(data: bytes) -> bool:
  """Whether the segments and scans reach the end-of-image marker."""
  position = 2
  while position + 4 <= len(data):
    if data[position] != 0xFF:
      return False
    marker = data[position + 1]
    if marker == 0xFF:  # Fill byte.
      position += 1
      continue
    if marker == 0xD9:
      return True
    if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # No length.
      position += 2
      continue
    length = int.from_bytes(data[position + 2:position + 4], "big")
    position += 2 + length
    if marker == 0xDA:  # A scan: entropy-coded bytes up to the next marker.
      while True:
        position = data.find(b"\xff", position)
        if position < 0 or position + 1 >= len(data):
          return False
        following = data[position + 1]
        if following == 0 or 0xD0 <= following <= 0xD7:
          position += 2
          continue
        break
  return False


def _walk_gif(data: bytes) -> bool:
  """Whether every block is complete (the trailer may be missing)."""
  if len(data) < 13:
    return False
  flags = data[10]
  position = 13 + (3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0)

  def skip_sub_blocks(position):
    while position < len(data):
      size = data[position]
      position += 1 + size
      if size == 0:
        return position
    return None

  while position < len(data):
    kind = data[position]
    if kind == 0x3B:
      return True
    if kind == 0x21:  # Extension: label, then sub-blocks.
      position = skip_sub_blocks(position + 2)
    elif kind == 0x2C:  # Image: descriptor, local table, LZW size, data.
      if position + 10 > len(data):
        return False
      flags = data[position + 9]
      position += 10 + (3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0)
      position = skip_sub_blocks(position + 1)
    else:
      return False
    if position is None or position > len(data):
      return False
  return True


def _bmp_reason(head: bytes, size: int) -> str | None:
  if size < 32:
    return "a BMP too short for its header"
  offset, = struct.unpack("<i", head[10:14])
  width, height = struct.unpack("<ii", head[18:26])
  bits, = struct.unpack("<h", head[28:30])
  if bits not in (8, 24, 32):
    return (f"a {bits}-bit BMP, which TensorFlow cannot decode (8, 24 or 32"
            " bits only)")
  row = (bits // 8 * width + 3) // 4 * 4
  if width <= 0 or height == 0 or size != offset + row * abs(height):
    return ("a BMP whose size does not match its header (truncated or"
            " compressed)")
  return None


def _read_whole(path: str) -> bytes:
  with open(path, "rb") as stream:
    return stream.read()


def unreadable_reason(path: str) -> str | None:
  """Why `path` cannot be decoded as an image, or None if it looks whole.

  Reads the first and the last few bytes; only a file whose end is not
  the expected end marker is read whole.
  """
  try:
    with open(path, "rb") as stream:
      head = stream.read(_HEAD)
      size = stream.seek(0, 2)
      stream.seek(max(size - _TAIL, 0))
      tail = stream.read(_TAIL)
  except OSError as error:
    return f"it cannot be read ({error.strerror or type(error).__name__})"
  if not size:
    return "it is empty"
  if head.startswith(_JPEG):
    if tail.endswith(_JPEG_END) or _walk_jpeg(_read_whole(path)):
      return None
    return "a truncated JPEG (no end-of-image marker)"
  if head.startswith(_PNG):
    if tail.endswith(_PNG_END) or _walk_png(_read_whole(path)):
      return None
    return "a truncated PNG (no IEND chunk)"
  if head.startswith(_GIF):
    if tail.endswith(b"\x3b") or _walk_gif(_read_whole(path)):
      return None
    return "a truncated GIF"
  if head.startswith(_BMP):
    return _bmp_reason(head, size)
  return f"not a PNG, JPEG, GIF or BMP image (it starts with {head[:8]!r})"


def find_unreadable(paths) -> dict[int, str]:
  """{index in `paths`: reason} of the files `unreadable_reason` flags."""
  with futures.ThreadPoolExecutor(_THREADS) as pool:
    reasons = pool.map(unreadable_reason, paths, chunksize=256)
    return {index: reason for index, reason in enumerate(reasons)
            if reason is not None}
