"""Errors of the media package.

Tree::

    MediaError
    ├── UnsupportedCodec   a codec/rate pair that PROTOCOL.md does not define
    ├── BadFrame           an audio frame of the wrong size
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
