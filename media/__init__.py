"""Audio only: frames, codecs, resampling, DTMF, prompt and recording files.

This package is numpy (plus soundfile in :mod:`media.wavfile`). It never imports
asyncio, aiohttp or :mod:`ivr`, so every part of it can be tested and
benchmarked as plain functions.
"""
