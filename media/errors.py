"""Errors of the media package.

Tree::

    MediaError
    ├── UnsupportedCodec   a codec/rate pair that PROTOCOL.md does not define
    ├── BadFrame           an audio frame of the wrong size (or shape, for the detector)
    ├── UnsupportedRate    a sample rate the resampler cannot take (also a ValueError)
    ├── UnknownDigit       a character that is not a DTMF digit (also a ValueError)
    ├── UnknownKey         a detector key not added, or added twice (also a KeyError)
    └── AudioFileError     a prompt or recording file that cannot be read or written
"""

from __future__ import annotations


class MediaError(Exception):
    """Root of every error raised by :mod:`media`."""


class UnsupportedCodec(MediaError):
    """A codec name or rate that the call protocol does not define."""


class BadFrame(MediaError):
    """An audio frame whose size does not match the call's codec and rate."""


class AudioFileError(MediaError):
    """A prompt or recording file that cannot be read or written."""


class UnsupportedRate(MediaError, ValueError):
    """A sample rate that is not a positive integer."""


class UnknownDigit(MediaError, ValueError):
    """A character that is not one of ``0-9 * # A-D``."""


class UnknownKey(MediaError, KeyError):
    """A call key used before :meth:`media.dtmf.DtmfDetector.add`, after ``remove``, or twice."""
