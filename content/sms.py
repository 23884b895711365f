"""SMS length: characters and segments as carriers count them.

A message goes out in GSM-7 when every character is in the GSM 03.38 alphabet (its
basic table, plus the extension table whose characters take two septets: an escape
and the character). Otherwise the whole message is UCS-2, where every UTF-16 code unit
counts (an emoji outside the Basic Multilingual Plane takes two). A single segment
holds 160 GSM-7 characters or 70 UCS-2 units; a longer message is split into parts
that each lose room to the concatenation header: 153 and 67.
"""

from __future__ import annotations

from dataclasses import dataclass

# GSM 03.38 basic character set, in code point order of the standard's table.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Reached through the escape character: each counts as two.
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")

LIMITS = {"GSM-7": (160, 153), "UCS-2": (70, 67)}


@dataclass(frozen=True)
class SmsStats:
    encoding: str  # "GSM-7" or "UCS-2"
    characters: int  # in the encoding's units
    segments: int
    per_segment: int  # room in each segment of this message
    remaining: int  # room left in the last segment


def sms_stats(text: str) -> SmsStats:
    if all(char in GSM7_BASIC or char in GSM7_EXTENSION for char in text):
        encoding = "GSM-7"
        units = sum(2 if char in GSM7_EXTENSION else 1 for char in text)
    else:
        encoding = "UCS-2"
        units = len(text.encode("utf-16-le")) // 2
    single, multi = LIMITS[encoding]
    if units == 0:
        return SmsStats(encoding, 0, 0, single, single)
    if units <= single:
        return SmsStats(encoding, units, 1, single, single - units)
    if encoding == "GSM-7":
        # An escape pair is never split across two parts: fill part by part.
        segments, used = _fill(text, multi, lambda char: 2 if char in GSM7_EXTENSION else 1)
    else:
        # Nor is a surrogate pair.
        segments, used = _fill(text, multi, lambda char: 2 if ord(char) > 0xFFFF else 1)
    return SmsStats(encoding, units, segments, multi, multi - used)


def _fill(text: str, room: int, width_of) -> tuple[int, int]:
    """(parts, units used in the last part) when characters never straddle parts."""
    segments, used = 1, 0
    for char in text:
        width = width_of(char)
        if used + width > room:
            segments += 1
            used = 0
        used += width
    return segments, used
