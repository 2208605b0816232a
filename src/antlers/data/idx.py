"""Reader (and a small writer, for tests and examples) for IDX files, the MNIST file format.

An IDX file is: two zero bytes, one dtype code byte, one byte ndim, then ndim big-endian uint32
dimensions, then the values in row-major (C) order, big-endian. Files may be gzipped; gzip is
detected by its magic bytes (1f 8b), whatever the file name says. A gzipped file is decompressed
only as far as its header announces (and never past ``MAX_IDX_BYTES``), so a gzip bomb costs no
more memory than an honest file of the size it claims.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

__all__ = ["IDX_DTYPES", "MAX_IDX_BYTES", "read_idx", "write_idx"]

# IDX dtype code -> big-endian NumPy dtype.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
GZIP_MAGIC = b"\x1f\x8b"
MAX_IDX_BYTES = 1 << 32  # the largest payload a header may claim (EMNIST's largest is ~0.7 GB)


def _read_bytes(path: Path) -> bytes:
    """The file's contents, decompressed if it starts with the gzip magic bytes."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ValueError(f"{path.name}: cannot read: {error.strerror or error}") from error
    if data[:2] != GZIP_MAGIC:
        return data
    try:
        return _gunzip(path, data)
    except zlib.error as error:
        raise ValueError(f"{path.name}: corrupt gzip data: {error}") from error


def _gunzip(path: Path, data: bytes) -> bytes:
    """Decompress the header, then at most the payload it announces plus one byte (so that a
    file that is too long is still seen as such). What comes out is checked by ``read_idx``."""
    stream = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip framing
    out = bytearray(stream.decompress(data, 4))
    if len(out) == 4 and out[:2] == b"\0\0" and out[2] in IDX_DTYPES:
        out += stream.decompress(stream.unconsumed_tail, 4 * out[3])
        if len(out) == 4 + 4 * out[3]:
            dims = np.frombuffer(bytes(out), dtype=">u4", count=out[3], offset=4)
            size = int(np.prod(dims, dtype=np.float64)) * IDX_DTYPES[out[2]].itemsize
            if size > MAX_IDX_BYTES:
                raise ValueError(
                    f"{path.name}: header claims {size} bytes of data, more than the "
                    f"{MAX_IDX_BYTES} an IDX file may hold here"
                )
            out += stream.decompress(stream.unconsumed_tail, size + 1)
    if not stream.eof and not stream.unconsumed_tail:  # all input used, the stream unfinished
        raise ValueError(f"{path.name}: corrupt gzip data: the stream ends early")
    return bytes(out)


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (raw or gzipped) into a native-endian NumPy array of the header's shape.

    Raises ValueError naming the file and the problem: bad magic, unknown dtype code,
    truncated header, or a payload whose size does not match the header's dimensions.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise ValueError(f"{path.name}: too short for an IDX header ({len(data)} bytes)")
    if data[0] != 0 or data[1] != 0:
        raise ValueError(
            f"{path.name}: bad magic: expected 00 00 <dtype> <ndim>, got {data[:4].hex(' ')}"
        )
    code, ndim = data[2], data[3]
    if code not in IDX_DTYPES:
        allowed = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise ValueError(f"{path.name}: unknown dtype code 0x{code:02X} (allowed: {allowed})")
    if ndim == 0:
        raise ValueError(f"{path.name}: header says 0 dimensions")
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise ValueError(
            f"{path.name}: truncated header: {ndim} dimensions need {header_size} bytes, "
            f"file has {len(data)}"
        )
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[code]
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    payload = len(data) - header_size
    if payload != expected:
        problem = "truncated" if payload < expected else "too long"
        shape = "x".join(str(d) for d in dims)
        raise ValueError(
            f"{path.name}: {problem}: header says {shape} = {expected} bytes, file has {payload}"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_size).reshape(dims)
    return array.astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray, compress: bool | None = None) -> None:
    """Write `array` as an IDX file; gzipped when `compress` is True (default: name ends .gz)."""
    path = Path(path)
    array = np.asarray(array)
    codes = {dt.newbyteorder("="): code for code, dt in IDX_DTYPES.items()}
    native = array.dtype.newbyteorder("=")
    if native not in codes:
        raise ValueError(
            f"cannot write dtype {array.dtype} as IDX (allowed: {sorted(map(str, codes))})"
        )
    header = bytes([0, 0, codes[native], array.ndim])
    header += np.asarray(array.shape, dtype=">u4").tobytes()
    data = header + array.astype(native.newbyteorder(">")).tobytes()
    if compress is None:
        compress = path.suffix == ".gz"
    path.write_bytes(gzip.compress(data) if compress else data)
