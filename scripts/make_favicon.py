"""Draw Wharf's favicon (static/wharf/favicon.ico) from the same shapes as favicon.svg: a Clarity-blue tile with
three white stacked containers on a quay. Pure Python, so the icon needs no image library; run it after changing
the design: `python scripts/make_favicon.py`."""

from __future__ import annotations

import struct
from pathlib import Path

SIZE = 32
BLUE = (0x00, 0x72, 0xA3)  # Clarity's action blue
WHITE = (0xFF, 0xFF, 0xFF)
# (x, y, width, height) of the white parts, in the SVG's 32-unit grid: three containers and the quay below them.
SHAPES = [(6, 9, 9, 6), (17, 9, 9, 6), (11, 16, 10, 6), (3, 24, 26, 3)]


def pixel(x: int, y: int) -> tuple[int, int, int, int]:
    """The colour (RGBA) of one pixel: transparent outside the tile's rounded corners."""
    corner = 4
    dx = max(corner - x, 0, x - (SIZE - 1 - corner))
    dy = max(corner - y, 0, y - (SIZE - 1 - corner))
    if dx * dx + dy * dy > corner * corner:
        return (0, 0, 0, 0)
    inside = any(sx <= x < sx + w and sy <= y < sy + h for sx, sy, w, h in SHAPES)
    return (*(WHITE if inside else BLUE), 255)


def ico() -> bytes:
    """A 32x32 32-bit ICO: the header, one directory entry and a bottom-up BGRA bitmap with an empty AND mask."""
    rows = []
    for y in range(SIZE - 1, -1, -1):
        rows.append(b"".join(bytes((b, g, r, a)) for r, g, b, a in (pixel(x, y) for x in range(SIZE))))
    mask = b"\x00" * (SIZE * SIZE // 8)
    header = struct.pack("<IiiHHIIiiII", 40, SIZE, SIZE * 2, 1, 32, 0, 0, 0, 0, 0, 0)
    image = header + b"".join(rows) + mask
    entry = struct.pack("<BBBBHHII", SIZE, SIZE, 0, 0, 1, 32, len(image), 6 + 16)
    return struct.pack("<HHH", 0, 1, 1) + entry + image


if __name__ == "__main__":
    target = Path(__file__).resolve().parents[1] / "static" / "wharf" / "favicon.ico"
    target.write_bytes(ico())
    print(f"wrote {target}")
