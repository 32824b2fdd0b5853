"""Hostile image files for tests: a real decompression-bomb PNG and a large, cheap JPEG."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

BOMB_SIDE = 30_000


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def write_bomb_png(path: Path, side: int = BOMB_SIDE) -> Path:
    """A valid 1-bit grayscale PNG of side × side black pixels (30000²: ~110 KB on disk, 900M pixels)."""
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte + packed bits
    z = zlib.compressobj(9)
    body = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1-bit grayscale
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", body) + _chunk(b"IEND", b"")
    )
    return path


def write_large_jpeg(path: Path, size: tuple[int, int]) -> Path:
    """A smooth RGB JPEG of *size* (a gradient: small on disk, full-size when decoded)."""
    from PIL import Image

    w, h = size
    small = Image.linear_gradient("L").resize((w // 16, h // 16))
    img = Image.merge("RGB", (small, small.transpose(Image.Transpose.ROTATE_90).resize(small.size), small))
    img.resize(size).save(path, quality=70)
    return path
