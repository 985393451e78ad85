"""TFRecord files read in plain Python, without starting TensorFlow's runtime.

Planning a run counts the records of the user's files and finds the largest
class index before the strategy exists. Doing that with `tf.data` would run
eager ops, which start TensorFlow's runtime: MultiWorkerMirroredStrategy
then refuses to be built ("Collective ops must be configured at program
startup") and GPU memory settings can no longer be applied. So this module
reads the TFRecord framing itself. Each record is

  uint64 length, uint32 masked CRC-32C of length, data, uint32 masked CRC-32C
  of data

(little-endian; tensorflow/core/lib/io/record_writer.h). Counting reads the
12-byte headers and seeks over the data; every header's CRC is checked, so
a file that is not a TFRecord file, or is cut short, is found here. The
data's CRC is left to TensorFlow's reader during training.
"""

from collections.abc import Iterator
import json
import os
import struct

from datasets.errors import DataError

_HEADER = struct.Struct("<QI")
_FOOTER_BYTES = 4
_MASK_DELTA = 0xA282EAD8
_GZIP_MAGIC = b"\x1f\x8b"


def _crc32c_table() -> tuple[int, ...]:
  table = []
  for byte in range(256):
    crc = byte
    for _ in range(8):
      crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    table.append(crc)
  return tuple(table)


_TABLE = _crc32c_table()


def masked_crc32c(data: bytes) -> int:
  """TFRecord's masked CRC-32C (Castagnoli) of `data`."""
  crc = 0xFFFFFFFF
  for byte in data:
    crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
  crc ^= 0xFFFFFFFF
  return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & (
      0xFFFFFFFF)


def _unreadable(path: str, why: str) -> DataError:
  return DataError(f"{path} is not a readable TFRecord file ({why}).")


def _records(path: str, *, read_data: bool) -> Iterator[bytes | None]:
  """Yields each record's data (None when `read_data` is False).

  Raises:
    DataError: If the file cannot be opened, a header's CRC is wrong, or
      the last record is cut short.
  """
  try:
    stream = open(path, "rb")  # pylint: disable=consider-using-with
  except OSError as error:
    raise _unreadable(path, error.strerror or type(error).__name__) from None
  with stream:
    size = stream.seek(0, 2)
    stream.seek(0)
    position, index = 0, 0
    while position < size:
      header = stream.read(_HEADER.size)
      if len(header) < _HEADER.size:
        raise _unreadable(path, f"record {index} is cut short")
      length, crc = _HEADER.unpack(header)
      if masked_crc32c(header[:8]) != crc:
        if not index and header.startswith(_GZIP_MAGIC):
          raise DataError(f"{path} is GZIP-compressed; TFRecord files are"
                          " read uncompressed: decompress it (gunzip).")
        raise _unreadable(path, f"record {index} has a corrupt header")
      position += _HEADER.size + length + _FOOTER_BYTES
      if position > size:
        raise _unreadable(path, f"record {index} is cut short")
      if read_data:
        data = stream.read(length)
        stream.seek(_FOOTER_BYTES, 1)
        yield data
      else:
        stream.seek(position)
        yield None
      index += 1


def count_records(paths: list[str]) -> list[int]:
  """Records per file, from the headers alone.

  Raises:
    DataError: If a file is not a readable TFRecord file.
  """
  return [sum(1 for _ in _records(path, read_data=False)) for path in paths]


def read_records(path: str) -> Iterator[bytes]:
  """Each record's serialized data, in file order.

  Raises:
    DataError: If the file is not a readable TFRecord file.
  """
  yield from _records(path, read_data=True)


# Record counts (and largest labels) kept beside the files they describe, so
# that a start or a resume does not read every record again.
COUNTS_FILE = "record_counts.json"
_COUNTS_VERSION = 1


def _stamp(path: str) -> dict:
  info = os.stat(path)
  return {"size": info.st_size, "mtime_ns": info.st_mtime_ns}


def _load_book(directory: str) -> dict:
  try:
    with open(os.path.join(directory, COUNTS_FILE), encoding="utf-8") as stream:
      book = json.load(stream)
    if book.get("version") == _COUNTS_VERSION and isinstance(
        book.get("files"), dict):
      return book["files"]
  except (OSError, ValueError, AttributeError):
    pass  # Missing or damaged: counted again, and written anew.
  return {}


def write_counts_book(directory: str, files: dict) -> bool:
  """Writes `files` (name -> entry) as the directory's counts file.

  Returns:
    False if the directory cannot be written (nothing is left behind).
  """
  staging = os.path.join(directory, f".{COUNTS_FILE}.{os.getpid()}.partial")
  try:
    with open(staging, "w", encoding="utf-8") as stream:
      json.dump({"version": _COUNTS_VERSION, "files": files}, stream,
                indent=1, sort_keys=True)
    os.replace(staging, os.path.join(directory, COUNTS_FILE))
    return True
  except OSError:
    if os.path.exists(staging):
      os.remove(staging)
    return False


def entry_for(path: str, records: int, largest: dict | None = None) -> dict:
  """A counts-file entry for `path` as it is now."""
  return {**_stamp(path), "records": int(records),
          "largest": dict(largest or {})}


def recorded_counts(paths: list[str], *, largest_keys=(), find_largest=None):
  """Records per file (and largest labels), from the counts files if current.

  A file's entry is trusted while the file's size and modification time
  are those recorded; otherwise the file is counted (headers only) or,
  when a largest label is wanted and not recorded, read once by
  `find_largest(path, keys) -> ({key: largest}, records)`; new entries are
  written back when the folder is writable.

  Returns:
    (counts, {key: largest over the files}, warnings).

  Raises:
    DataError: If a file is not a readable TFRecord file.
  """
  books, changed = {}, set()
  counts, largest = [], {key: -1 for key in largest_keys}
  for path in paths:
    directory, name = os.path.split(os.path.abspath(path))
    book = books.setdefault(directory, _load_book(directory))
    try:
      stamp = _stamp(path)
    except OSError as error:
      raise _unreadable(path, error.strerror or type(error).__name__) from None
    entry = book.get(name)
    if not isinstance(entry, dict) or any(entry.get(k) != v
                                          for k, v in stamp.items()):
      entry = {**stamp, "records": None, "largest": {}}
    missing = [key for key in largest_keys if key not in entry["largest"]]
    if missing:
      found, entry["records"] = find_largest(path, missing)
      entry["largest"].update(found)
    elif not isinstance(entry.get("records"), int):
      entry["records"] = count_records([path])[0]
    if entry is not book.get(name) or missing:
      book[name] = entry
      changed.add(directory)
    counts.append(entry["records"])
    largest = {k: max(v, entry["largest"][k]) for k, v in largest.items()}
  warnings = tuple(
      f"{directory} is not writable, so the records of its TFRecord files"
      f" are counted at every start; write {COUNTS_FILE} there once (python"
      " -m launch.write_tfrecords does) to start at once."
      for directory in sorted(changed)
      if not write_counts_book(directory, books[directory]))
  return counts, largest, warnings
