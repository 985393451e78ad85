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
