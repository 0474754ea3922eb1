"""Colour values: the RGBA tuple type and its hex text form used in the JSON definitions."""

import re

RGBA = tuple[int, int, int, int]

TRANSPARENT: RGBA = (0, 0, 0, 0)

# Only the long forms: short "#rgb" forms save nothing in data files and
# make typos (a dropped digit) parse as a different colour instead of failing.
_HEX = re.compile(r"^#(?:[0-9a-fA-F]{6}|[0-9a-fA-F]{8})$")


def parse_color(text: str) -> RGBA:
    """Parse "#rrggbb" (opaque) or "#rrggbbaa" into an RGBA tuple."""
    if not isinstance(text, str) or not _HEX.match(text):
        raise ValueError(f"invalid colour {text!r}: expected '#rrggbb' or '#rrggbbaa'")
    digits = text[1:]
    if len(digits) == 6:
        digits += "ff"
    r, g, b, a = (int(digits[i : i + 2], 16) for i in range(0, 8, 2))
    return (r, g, b, a)


def format_color(rgba: RGBA) -> str:
    """Format an RGBA tuple as "#rrggbbaa" (always with alpha, so clients need one parser)."""
    return "#" + "".join(f"{channel:02x}" for channel in check_rgba(rgba))


def check_rgba(value: object) -> RGBA:
    """Return `value` as an RGBA tuple of four ints in 0..255, or raise ValueError."""
    if not isinstance(value, (tuple, list)) or len(value) != 4:
        raise ValueError(f"invalid RGBA {value!r}: expected 4 integers")
    channels = tuple(int(c) for c in value)
    if any(c != v or not 0 <= c <= 255 for c, v in zip(channels, value)):
        raise ValueError(f"invalid RGBA {value!r}: channels must be integers in 0..255")
    return channels  # type: ignore[return-value]
