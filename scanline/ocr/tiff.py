"""The pages of a TIFF, counted and measured from its directories without decoding a pixel.

A TIFF is a chain of image file directories (IFDs), each naming the next by its offset.
Pillow's ``n_frames`` follows the chain to its end, so a hostile file of a million tiny
chained IFDs (or a chain that loops) costs whatever it likes before any limit applies. This
walk stops after ``limit + 1`` directories, refuses a loop or an offset outside the file,
and reads only the width and length tags of each directory (vectorised per directory: a
directory may hold 65,535 entries).
"""

from __future__ import annotations

import struct
import sys
from array import array
from dataclasses import dataclass

IMAGE_WIDTH, IMAGE_LENGTH = 256, 257
# Entry count format, entry size and offset format: classic TIFF, BigTIFF.
_CLASSIC = ("H", 12, "I")
_BIG = ("Q", 20, "Q")
_TYPE_FORMATS = {3: "H", 4: "I", 16: "Q"}  # SHORT, LONG, LONG8


class TiffError(ValueError):
    """Not a TIFF this walk can follow (bad header, truncated or looping directories)."""


@dataclass(frozen=True)
class TiffPages:
    sizes: list[tuple[int, int]]  # (width, height) per page, at most limit + 1 of them
    complete: bool  # False: the chain goes on past limit + 1 directories


def is_tiff(head: bytes) -> bool:
    return head[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")


def walk(data: bytes, limit: int) -> TiffPages:
    if not is_tiff(data):
        raise TiffError("not a TIFF header")
    order = "<" if data[:2] == b"II" else ">"
    big = data[2:4] in (b"+\0", b"\0+")
    count_format, entry_size, offset_format = _BIG if big else _CLASSIC
    start = 8 if big else 4
    offset = _unpack(data, order + offset_format, start)
    sizes: list[tuple[int, int]] = []
    seen: set[int] = set()
    while offset and len(sizes) <= limit:
        if offset in seen:
            raise TiffError("the directories loop")
        seen.add(offset)
        entries = _unpack(data, order + count_format, offset)
        first = offset + struct.calcsize(count_format)
        block = data[first:first + entries * entry_size]
        if len(block) != entries * entry_size:
            raise TiffError("a directory runs past the end of the file")
        sizes.append(_size(block, entries, entry_size, order, big))
        offset = _unpack(data, order + offset_format, first + entries * entry_size)
    return TiffPages(sizes, complete=not offset)


def _unpack(data: bytes, fmt: str, at: int) -> int:
    try:
        return int(struct.unpack_from(fmt, data, at)[0])
    except struct.error:
        raise TiffError("an offset points outside the file") from None


def _size(block: bytes, entries: int, entry_size: int, order: str,
          big: bool) -> tuple[int, int]:
    tags = array("H")
    tags.frombytes(block)
    if (order == "<") != (sys.byteorder == "little"):
        tags.byteswap()
    tag_numbers = tags[0::entry_size // 2].tolist()
    found = {}
    for tag in (IMAGE_WIDTH, IMAGE_LENGTH):
        try:
            at = tag_numbers.index(tag) * entry_size
        except ValueError:
            raise TiffError(f"a directory has no tag {tag} (image size)") from None
        kind = struct.unpack_from(order + "H", block, at + 2)[0]
        fmt = _TYPE_FORMATS.get(kind)
        if fmt is None or (fmt == "Q" and not big):
            raise TiffError(f"tag {tag} has type {kind}, not an integer")
        found[tag] = struct.unpack_from(order + fmt, block, at + (12 if big else 8))[0]
    return found[IMAGE_WIDTH], found[IMAGE_LENGTH]
