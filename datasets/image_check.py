"""Which image files cannot be decoded, told cheaply in plain Python.

`unreadable_reason(path)` reads the first and the last bytes of a file and
says why TensorFlow's `decode_image` would fail on it, or None:

* empty files, and files that are not PNG, JPEG, GIF or BMP (nor WebP or
  JPEG XL, which TensorFlow decodes too) by their magic bytes (a text or
  HTML page saved as `.jpg`);
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
import os
import struct

_PNG = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_JPEG = b"\xff\xd8\xff"
_JPEG_END = b"\xff\xd9"
_GIF = (b"GIF87a", b"GIF89a")
_BMP = b"BM"
# TensorFlow also decodes WebP and JPEG XL (whatever a file is named).
_OTHER = (b"\xff\x0a", b"\x00\x00\x00\x0cJXL \r\n\x87\n")
_HEAD, _TAIL = 32, 16
# Markers without a length: stuffing (00), fill (FF), TEM (01), RST0-7.
_NO_LENGTH = frozenset([0x00, 0xFF, 0x01, *range(0xD0, 0xD8)])
# Checking many files on a network file system is latency-bound: threads
# overlap the opens (the check's Python work is small), a chunk each.
_THREADS = 8
_CHUNK = 2048


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
  """Whether the segments and scans reach the end of the image.

  As lenient as libjpeg: bytes between segments are skipped, and a file
  whose last byte is the FF of the end marker still decodes.
  """
  position, has_scan = 2, False
  while True:
    position = data.find(b"\xff", position)
    if position < 0:
      return False
    if position + 1 >= len(data):
      return has_scan
    marker = data[position + 1]
    if marker == 0xD9:
      return has_scan
    if marker in _NO_LENGTH:
      position += 1 if marker == 0xFF else 2
      continue
    if position + 4 > len(data):
      return False
    position += 2 + int.from_bytes(data[position + 2:position + 4], "big")
    if marker != 0xDA:
      continue
    has_scan = True
    while True:  # Entropy-coded bytes up to the next real marker.
      position = data.find(b"\xff", position)
      if position < 0:
        return False
      if position + 1 >= len(data):
        return True
      if data[position + 1] not in _NO_LENGTH or data[position + 1] == 0xFF:
        break
      position += 2


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

  if position >= len(data):
    return False
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
    return "it is a BMP too short for its header"
  offset, = struct.unpack("<i", head[10:14])
  width, height = struct.unpack("<ii", head[18:26])
  bits, = struct.unpack("<h", head[28:30])
  if bits not in (8, 24, 32):
    return (f"it is a {bits}-bit BMP, which TensorFlow cannot decode (it"
            " reads 8, 24 and 32 bits)")
  row = (bits // 8 * width + 3) // 4 * 4
  if width <= 0 or height == 0 or size != offset + row * abs(height):
    return ("it is a BMP whose size does not match its header, truncated"
            " or compressed")
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
    descriptor = os.open(path, os.O_RDONLY)
    try:
      size = os.fstat(descriptor).st_size
      head = os.pread(descriptor, _HEAD, 0)
      tail = os.pread(descriptor, _TAIL, max(size - _TAIL, 0))
    finally:
      os.close(descriptor)
  except OSError as error:
    return f"it cannot be read: {error.strerror or type(error).__name__}"
  if not size:
    return "it is empty"
  if head.startswith(_JPEG):
    if tail.endswith(_JPEG_END) or _walk_jpeg(_read_whole(path)):
      return None
    return "it is a truncated JPEG, without its end-of-image marker"
  if head.startswith(_PNG):
    if tail.endswith(_PNG_END) or _walk_png(_read_whole(path)):
      return None
    return "it is a truncated PNG, without its IEND chunk"
  if head.startswith(_GIF):
    if tail.endswith(b"\x3b") or _walk_gif(_read_whole(path)):
      return None
    return "it is a truncated GIF"
  if head.startswith(_BMP):
    return _bmp_reason(head, size)
  if head.startswith(_OTHER) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
    return None
  return f"it is no PNG, JPEG, GIF or BMP image but starts with {head[:8]!r}"


def find_unreadable(paths) -> dict[int, str]:
  """{index in `paths`: reason} of the files `unreadable_reason` flags."""
  paths = list(paths)
  chunks = [paths[start:start + _CHUNK]
            for start in range(0, len(paths), _CHUNK)]
  check = lambda chunk: [unreadable_reason(path) for path in chunk]
  if len(chunks) > 1:
    with futures.ThreadPoolExecutor(_THREADS) as pool:
      results = list(pool.map(check, chunks))
  else:
    results = [check(chunk) for chunk in chunks]
  reasons = (reason for result in results for reason in result)
  return {index: reason for index, reason in enumerate(reasons)
          if reason is not None}
