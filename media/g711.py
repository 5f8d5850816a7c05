"""G.711 companding: 16-bit linear PCM to and from 8-bit mu-law and A-law codes.

This module owns the two G.711 code tables (ITU-T G.711, 11/1988) and nothing
else. Both directions are numpy lookups in tables built once at import, so a
frame of any shape is encoded or decoded in one indexing operation; there is
no per-sample Python and no :mod:`audioop` (gone from Python 3.13).

Linear samples are 16-bit left-justified, as in ITU-T G.191 (the Software
Tool Library whose ``g711.c`` is the reference implementation of G.711):
mu-law quantises the top 14 bits, A-law the top 13 bits. Negative samples are
taken in one's complement before truncation, as G.191 does, so that the
quantiser is symmetric and ``-1`` decodes back to ``0`` rather than to ``-8``.
Decoded values are the mid-points of the quantisation intervals (G.711 Tables
1 and 2), scaled to 16 bits: mu-law spans +-32124, A-law +-32256.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

# Not imported from media.frame: frame imports this module for its codecs.
Pcm = npt.NDArray[np.int16]

Codes = npt.NDArray[np.uint8]

# G.711 Table 2 (mu-law): the all-ones code 0xFF is the positive zero level
# (digital silence); the all-zeros code is the most negative level.
ULAW_SILENCE = 0xFF
# G.711 Table 1 (A-law): even bits are inverted on the line, so the smallest
# positive level, code 0x80, is transmitted as 0xD5.
ALAW_SILENCE = 0xD5

# mu-law works on a 14-bit magnitude biased by 33 (G.711 Table 2: the
# decision values of segment s run from 32 * 2**s - 33 in steps of 2**(s+1)).
_ULAW_BIAS = 33
_ULAW_MAX_BIASED = 0x1FFF  # 8191 = 8158 + 33: larger magnitudes clip to the top code
# A-law works on a 12-bit magnitude (the 13-bit sign-magnitude value / 2):
# segments 0 and 1 both have 16 steps of 1, segment s >= 2 steps of 2**(s-1).
_ALAW_EVEN_BITS = 0x55
_SIGN_BIT = 0x80


def _build_ulaw_encoder() -> Codes:
    """mu-law code for every int16, indexed by the sample viewed as uint16 (G.191 ulaw_compress)."""
    linear = np.arange(-32768, 32768, dtype=np.int32)
    negative = linear < 0
    # One's complement for negative samples, then keep the top 14 bits.
    magnitude = np.where(negative, ~linear, linear) >> 2
    biased = np.minimum(magnitude + _ULAW_BIAS, _ULAW_MAX_BIASED)
    # Segment (exponent) = position of the leading one above bit 5, 0..7.
    exponent = np.floor(np.log2(biased >> 5)).astype(np.int32)
    mantissa = (biased >> (exponent + 1)) & 0x0F
    code = (exponent << 4) | mantissa
    # The line code is the one's complement; the sign bit is set for >= 0.
    code = np.where(negative, 0x7F ^ code, 0xFF ^ code)
    table = np.empty(65536, dtype=np.uint8)
    table[linear.astype(np.int16).view(np.uint16)] = code.astype(np.uint8)
    return table


def _build_ulaw_decoder() -> Pcm:
    """16-bit decoded level of every mu-law code (G.191 ulaw_expand)."""
    codes = np.arange(256, dtype=np.int32)
    inverted = ~codes & 0xFF
    exponent = (inverted >> 4) & 0x07
    mantissa = inverted & 0x0F
    step = 4 << (exponent + 1)
    magnitude = (0x80 << exponent) + step * mantissa + step // 2 - 4 * _ULAW_BIAS
    return np.where(codes & _SIGN_BIT, magnitude, -magnitude).astype(np.int16)


def _build_alaw_encoder() -> Codes:
    """A-law code for every int16, indexed by the sample viewed as uint16 (G.191 alaw_compress)."""
    linear = np.arange(-32768, 32768, dtype=np.int32)
    negative = linear < 0
    index = np.where(negative, ~linear, linear) >> 4  # 0..2047
    # Exponent: 0 for index < 32 (segments 0 and 1 share a step), else the
    # leading-one position; the mantissa drops that leading one.
    exponent = np.where(index < 32, 0, np.floor(np.log2(np.maximum(index, 1))).astype(np.int32) - 3)
    exponent = np.maximum(exponent, 0)
    mantissa = np.where(exponent == 0, index, (index >> np.maximum(exponent - 1, 0)) - 16)
    code = np.where(exponent == 0, mantissa, (exponent << 4) + mantissa)
    code = np.where(negative, code, code | _SIGN_BIT) ^ _ALAW_EVEN_BITS
    table = np.empty(65536, dtype=np.uint8)
    table[linear.astype(np.int16).view(np.uint16)] = code.astype(np.uint8)
    return table


def _build_alaw_decoder() -> Pcm:
    """16-bit decoded level of every A-law code (G.191 alaw_expand)."""
    codes = np.arange(256, dtype=np.int32)
    toggled = (codes ^ _ALAW_EVEN_BITS) & 0x7F
    exponent = toggled >> 4
    mantissa = toggled & 0x0F
    mantissa = np.where(exponent > 0, mantissa + 16, mantissa)
    # Left-justify and add half a quantisation step (the interval mid-point).
    magnitude = (mantissa << 4) + 0x08
    magnitude = np.where(exponent > 1, magnitude << np.maximum(exponent - 1, 0), magnitude)
    return np.where(codes & _SIGN_BIT, magnitude, -magnitude).astype(np.int16)


def _frozen(table: npt.NDArray[np.generic]) -> None:
    table.setflags(write=False)


_ULAW_ENCODE = _build_ulaw_encoder()
_ULAW_DECODE = _build_ulaw_decoder()
_ALAW_ENCODE = _build_alaw_encoder()
_ALAW_DECODE = _build_alaw_decoder()
for _table in (_ULAW_ENCODE, _ULAW_DECODE, _ALAW_ENCODE, _ALAW_DECODE):
    _frozen(_table)


def _as_int16(pcm: npt.NDArray[np.integer] | Pcm) -> Pcm:
    """``pcm`` as int16; any other dtype is clipped to the 16-bit range first."""
    array = np.asarray(pcm)
    if array.dtype == np.int16:
        return array
    return np.clip(array, -32768, 32767).astype(np.int16)


def _as_codes(codes: Codes) -> Codes:
    return np.asarray(codes).astype(np.uint8, copy=False)


def ulaw_encode(pcm: Pcm) -> Codes:
    """mu-law codes (ITU-T G.711, Table 2) for 16-bit samples; the shape is kept."""
    return _ULAW_ENCODE[_as_int16(pcm).view(np.uint16)]


def ulaw_decode(codes: Codes) -> Pcm:
    """16-bit samples for mu-law codes (ITU-T G.711, Table 2); the shape is kept."""
    return _ULAW_DECODE[_as_codes(codes)]


def alaw_encode(pcm: Pcm) -> Codes:
    """A-law codes (ITU-T G.711, Table 1) for 16-bit samples; the shape is kept."""
    return _ALAW_ENCODE[_as_int16(pcm).view(np.uint16)]


def alaw_decode(codes: Codes) -> Pcm:
    """16-bit samples for A-law codes (ITU-T G.711, Table 1); the shape is kept."""
    return _ALAW_DECODE[_as_codes(codes)]
