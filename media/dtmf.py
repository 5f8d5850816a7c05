"""DTMF: generating tones, and detecting them in-band for every live call at once.

This module owns the DTMF signal (ITU-T Q.23: the 4 x 4 keypad of low-group
and high-group frequencies) and its in-band reception (ITU-T Q.24, with the
limits that Asterisk's ``dsp.c`` and spandsp's ``dtmf.c`` apply):

* :func:`generate`, :func:`generate_sequence` and :func:`tone_pair` make
  tones of any digit, duration, level, twist and frequency offset;
* :class:`DtmfDetector` finds digits in the inbound audio of thousands of
  calls with one matrix product per 20 ms media-clock tick, keeping per-call
  state for tone on/off timing; :func:`detect` runs it over a whole signal.

Levels are in dBm0 by the G.711 convention: a sine whose peak is the mu-law
full scale (8159 in 14 bits, 32636 in 16) is +3.17 dBm0, so a 0 dBm0 sine has
a peak of ``DBM0_PEAK`` = 22657 (the mu-law digital milliwatt of G.711
Table 5 decodes to a 1 kHz sine of that peak, within 0.03 dB). A tone pair's
level is its total power: at 0 dBm0 each tone of an untwisted pair is at
-3 dBm0, and the pair stays below full scale with 8 dB of twist either way.

Twist follows Asterisk and spandsp: *normal* twist is the low group louder
than the high group (the line loses more at high frequencies), *reverse*
twist the high group louder. ``twist_db`` is low-group level minus high-group
level, so positive is normal twist. Q.24 receivers accept 8 dB normal and
4 dB reverse.

How the detector decides:

1. Every 10 ms block (80 samples at 8 kHz, 160 at 16 kHz) of every call is
   projected on the cosine and sine of the eight frequencies, one
   ``(calls * blocks, samples) @ (samples, 16)`` product per tick: the
   Goertzel values, complex, so blocks can be joined coherently. A cheap
   screen on those energies passes on only blocks that could hold a digit,
   and calls with a digit in progress (a handful, even among thousands).
   Before the product, each block's energy is taken: a call whose blocks are
   all too quiet for any pair to pass the screen (silence, a listening
   caller), with no digit in progress, skips the product altogether.
2. For those, the strongest row and column are fitted jointly by least
   squares (the two tones' cosines and sines are not orthogonal over 10 ms;
   the fit separates them where plain Goertzel energies leak into each
   other). The block is *valid* when the pair reaches ``MIN_LEVEL_DBM0``,
   each tone carries ``TONE_SHARE`` of its energy plus what the fit leaves
   unexplained (the tone-to-total energy test of Asterisk and spandsp, made
   per tone), and the twist is roughly within limits.
3. Consecutive valid blocks of a digit are *linked* when both tones kept
   their frequency: each tone's phase advance over 10 ms gives its offset
   from nominal, which must be within ``FREQ_TOLERANCE`` (Q.24: accept within
   1.5%, reject beyond 3.5%; we cut between), and when, over the 20 ms the
   two blocks span, the second-strongest frequency of each group is
   ``RELATIVE_PEAK_DB`` below the strongest (Asterisk's relative peak test).
4. A run of linked blocks gives the tone's duration: each block counts by its
   amplitude relative to the run's loudest, and the block before the run by
   the tones' amplitude in it, so partly covered blocks count for the part
   they hold. A digit is reported once the estimate reaches ``ACCEPT_MS`` and
   the run's twist, measured with a fit that absorbs small frequency offsets,
   is within ``NORMAL_TWIST_DB`` / ``REVERSE_TWIST_DB``. Tones of 20 ms or
   less never reach ``ACCEPT_MS``, tones of 40 ms always do, and the report
   comes at most ``REPORT_DELAY_MS`` (45 ms) after the tone began, although it
   can only leave at the end of a 20 ms frame.
5. A reported digit is held while its tones stay present (looser limits) and
   released after ``RELEASE_BLOCKS`` blocks without them, so a digit held for
   seconds is reported once and a 50 ms gap separates two.

The onset reported with each digit is the tone's first sample (from step 4),
relative to the first sample of the batch that reports it, typically within
a few samples: what masking needs. It lies at most
``DETECTION_DELAY_FRAMES`` 20 ms frames before the reporting frame, so a
recorder that holds that many frames back can silence a tone from its very
first sample.

The generator and the detector share one module (about 580 lines) because
they share the tone table and the Q.24 limits, and the tests check one
against the other.
"""

from __future__ import annotations

import math
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from media.errors import BadFrame, UnknownDigit, UnknownKey
from media.frame import PTIME_MS, Pcm, samples_per_frame

# ITU-T Q.23, Table 1: the keypad and its frequencies.
KEYPAD = ("123A", "456B", "789C", "*0#D")
LOW_GROUP_HZ = (697.0, 770.0, 852.0, 941.0)
HIGH_GROUP_HZ = (1209.0, 1336.0, 1477.0, 1633.0)
DIGITS = "".join(KEYPAD)  # the digit of row r, column c is DIGITS[4 * r + c]

# G.711 level reference: +3.17 dBm0 is a sine at the mu-law full scale of 32636.
DBM0_PEAK = 32636.0 * 10.0 ** (-3.17 / 20.0)

BLOCK_MS = 10  # analysis block; two per 20 ms frame
MIN_LEVEL_DBM0 = -31.0  # of the pair: accept -26 dBm0, reject -35 dBm0
NORMAL_TWIST_DB = 9.0  # Q.24 / Asterisk accept 8 dB; 1 dB for measurement in noise
REVERSE_TWIST_DB = 5.0  # Q.24 / Asterisk accept 4 dB; 1 dB for measurement in noise
BLOCK_TWIST_SLACK_DB = 4.0  # one block, unaveraged, may be this much further out
TONE_SHARE = 0.4  # each tone >= -4 dB of itself plus the unexplained energy
# Q.24: accept within 1.5%, reject beyond 3.5%. Cutting at 2% rather than midway
# also keeps out a tone with its own second harmonic: the pairs nearest an octave
# (1336/697, 1477/770, 1633/852) are 4.2% short of it, more than 2 x 2%.
FREQ_TOLERANCE = 0.02
RELATIVE_PEAK_DB = 6.0  # Asterisk uses 8 dB over 12.75 ms; ours spans 20 ms, in noise
# Estimated tone duration that reports a digit: above 20 ms with room for the
# estimate's error, and low enough that waiting for the end of a 20 ms frame
# still reports a tone within 45 ms of its start (23 + 20 + ~1).
ACCEPT_MS = 23.0
RELEASE_BLOCKS = 2  # blocks without the held digit's tones that release it
# How late a digit is reported after its tone's first sample, for the media
# clock's frames of PTIME_MS (whole blocks): the run's estimate reaches ACCEPT_MS
# at most one block after the tone has lasted that long, the report then waits
# for the end of the frame that holds the block, and the onset estimate may be
# up to ONSET_ERROR_MS early (test_onset_to_event_delay_is_at_most_45ms).
ONSET_ERROR_MS = 2.0
REPORT_DELAY_MS = ACCEPT_MS + BLOCK_MS + (PTIME_MS - BLOCK_MS) + ONSET_ERROR_MS
# Frames before the reporting one that a reported tone may have begun in: what a
# recorder must hold back, unwritten, to mask every tone from its first sample.
DETECTION_DELAY_FRAMES = math.ceil((REPORT_DELAY_MS - PTIME_MS) / PTIME_MS)
HOLD_LEVEL_DB = 6.0  # a held digit's pair may drop this much below MIN_LEVEL_DBM0
HOLD_TONE_SHARE = 0.25  # and its tones carry this share

_MAX_KEY = 1 << 22  # keys index arrays directly: keep them small
_PRODUCT_MACS = 1 << 18  # per slice of the Goertzel product: OpenBLAS threads above this
_INITIAL_CAPACITY = 64

Floats = npt.NDArray[np.float64]
Floats32 = npt.NDArray[np.float32]
Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]


class DigitDetected(NamedTuple):
    """A digit found in-band, reported once when its tone has lasted long enough."""

    key: int
    digit: str
    onset: int
    """The tone's first sample, relative to the first sample of the batch that reported it."""


# --- generation ---------------------------------------------------------------


def _position(digit: str) -> tuple[int, int]:
    index = DIGITS.find(digit.upper()) if len(digit) == 1 else -1
    if index < 0:
        raise UnknownDigit(f"{digit!r} is not a DTMF digit; use one of {DIGITS}")
    return divmod(index, 4)


def tone_pair(
    low_hz: float,
    high_hz: float,
    duration_ms: float,
    sample_rate: int,
    level_dbm0: float = -10.0,
    twist_db: float = 0.0,
) -> Pcm:
    """Two sines from phase 0, ``level_dbm0`` their total power, ``twist_db`` low minus high level.

    With no twist each tone is 3 dB below ``level_dbm0``, so the pair stays
    under full scale up to 0 dBm0 with 8 dB of twist either way.
    """
    count = round(duration_ms * sample_rate / 1000)
    total = 10.0 ** (level_dbm0 / 10.0)
    low_share = 1.0 / (1.0 + 10.0 ** (-twist_db / 10.0))
    low_peak = DBM0_PEAK * math.sqrt(total * low_share)
    high_peak = DBM0_PEAK * math.sqrt(total * (1.0 - low_share))
    t = np.arange(count, dtype=np.float64) / sample_rate
    x = low_peak * np.sin(2 * np.pi * low_hz * t) + high_peak * np.sin(2 * np.pi * high_hz * t)
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)


def frequencies(digit: str) -> tuple[float, float]:
    """The (low, high) frequencies of ``digit`` in Hz (ITU-T Q.23)."""
    row, col = _position(digit)
    return LOW_GROUP_HZ[row], HIGH_GROUP_HZ[col]


def generate(
    digit: str,
    duration_ms: int,
    sample_rate: int,
    level_dbm0: float = -10.0,
    twist_db: float = 0.0,
    freq_offset: float = 0.0,
) -> Pcm:
    """The tone of ``digit``; ``freq_offset`` shifts both frequencies (0.015 is +1.5%)."""
    low, high = frequencies(digit)
    scale = 1.0 + freq_offset
    return tone_pair(low * scale, high * scale, duration_ms, sample_rate, level_dbm0, twist_db)


def generate_sequence(
    digits: str,
    tone_ms: int,
    gap_ms: int,
    sample_rate: int,
    level_dbm0: float = -10.0,
    twist_db: float = 0.0,
    freq_offset: float = 0.0,
) -> Pcm:
    """Each digit's tone followed by ``gap_ms`` of silence."""
    gap = np.zeros(round(gap_ms * sample_rate / 1000), dtype=np.int16)
    parts: list[Pcm] = []
    for digit in digits:
        parts.append(generate(digit, tone_ms, sample_rate, level_dbm0, twist_db, freq_offset))
        parts.append(gap)
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)


# --- detection ----------------------------------------------------------------


def _db(ratio_db: float) -> float:
    return float(10.0 ** (ratio_db / 10.0))


@dataclass(slots=True)
class _Call:
    """On/off timing state of one call (steps 4 and 5)."""

    digit: int = -1  # digit index of the run of linked valid blocks, -1 for none
    blocks: int = 0  # blocks in the run
    start: int = 0  # first sample of the run's first block, from the next batch's start
    amp_sum: float = 0.0  # sum over the run of each block's tone amplitudes
    amp_max: float = 0.0
    first_amp: float = 0.0
    row_max: float = 0.0
    col_max: float = 0.0
    lead_row: float = 0.0  # tone amplitudes in the block before the run
    lead_col: float = 0.0
    twist_row: float = 0.0  # offset-absorbing amplitudes summed over the run
    twist_col: float = 0.0
    held: int = -1  # digit index reported and still present, -1 for none
    missing: int = 0  # consecutive blocks without the held digit


# Columns of the per-block measurements handed from _measure to _timing.
(
    _M_DIGIT,
    _M_VALID,
    _M_PRESENT,
    _M_LINKED,
    _M_AMP_ROW,
    _M_AMP_COL,
    _M_LEAD_ROW,
    _M_LEAD_COL,
    _M_TWIST_ROW,
    _M_TWIST_COL,
) = range(10)


class DtmfDetector:
    """In-band DTMF detection for many calls, batched (ITU-T Q.24).

    Each call is a small integer ``key`` chosen by the caller (keys index
    arrays directly, so keep them below a few million). :meth:`process` takes
    one frame per call, any whole number of 10 ms blocks (the media clock
    passes 20 ms), and returns the digits whose tones became long enough in
    it. Feed every call on every tick, with silence for a lost frame. Used
    with a single key it is the per-call detector: batched or looped, the
    results are the same.
    """

    def __init__(self, sample_rate: int) -> None:
        if sample_rate % (1000 // BLOCK_MS) or sample_rate < 4000:
            raise BadFrame(f"DTMF detection needs a rate of whole 10 ms blocks, not {sample_rate}")
        self.sample_rate = sample_rate
        self.block = sample_rate * BLOCK_MS // 1000
        """Samples per analysis block."""
        n = self.block
        freqs = np.array(LOW_GROUP_HZ + HIGH_GROUP_HZ)
        omega = 2 * np.pi * freqs / sample_rate
        t = np.arange(n)[:, None]
        # Columns: cos and -sin of each frequency, scaled so that |X|^2 is the
        # energy that a tone on that frequency puts in the block (Goertzel).
        basis = np.hstack([np.cos(omega * t), -np.sin(omega * t)]) * math.sqrt(2.0 / n)
        self._basis = basis.astype(np.float32)
        # The same vectors on a linear ramp: with them a fit absorbs a small
        # frequency offset (first-order Taylor term), so that a loud offset
        # tone does not bleed into a quiet one when twist is measured.
        self._ramp_basis = basis * ((np.arange(n) - (n - 1) / 2) / n)[:, None]
        self._setup_fits(np.hstack([basis, self._ramp_basis]))
        # A tone exactly on frequency advances by omega * n per block.
        self._unrotate = np.exp(-1j * omega * n)
        self._unrotate_pair = self._unrotate[self._tones]  # (16 digits, 2 tones)
        self._tolerance_rad = (FREQ_TOLERANCE * freqs * 2 * np.pi * n / sample_rate)[self._tones]
        dbm0_energy = DBM0_PEAK**2 * n / 2  # a 0 dBm0 sine over one block
        self._min_energy = dbm0_energy * _db(MIN_LEVEL_DBM0)
        self._hold_energy = self._min_energy / _db(HOLD_LEVEL_DB)
        self._block_normal = _db(NORMAL_TWIST_DB + BLOCK_TWIST_SLACK_DB)
        self._block_reverse = _db(REVERSE_TWIST_DB + BLOCK_TWIST_SLACK_DB)
        self._run_normal = math.sqrt(_db(NORMAL_TWIST_DB))  # amplitude ratios
        self._run_reverse = math.sqrt(_db(REVERSE_TWIST_DB))
        self._relative_peak = 1.0 / _db(RELATIVE_PEAK_DB)
        self._accept_blocks = ACCEPT_MS / BLOCK_MS
        # Screen on plain Goertzel energies. A valid block's tones hold at
        # least 2 * share / (1 + share) of its energy (each tone has `share` of
        # itself plus the rest), are loud enough and within twist. Plain
        # energies are within a few dB of the fitted ones, so the screen's
        # bounds are those loosened by 3 dB (share: 1.5 dB; twist: 6 dB).
        self._screen_energy = self._min_energy / 2
        self._screen_share = 2 * TONE_SHARE / (1 + TONE_SHARE) / 1.4
        self._screen_normal = self._block_normal * 4
        self._screen_reverse = self._block_reverse * 4
        # Quiet blocks skip the product. Any pair's Goertzel energy is at most
        # the largest eigenvalue of its four vectors' Gram matrix times the
        # block's energy: a block with less than this cannot pass the screen,
        # whatever its samples.
        pairs = np.stack([self._tones[:, 0], self._tones[:, 0] + 8], 1)
        pairs = np.hstack([pairs, np.stack([self._tones[:, 1], self._tones[:, 1] + 8], 1)])
        gram = basis.T @ basis
        gain = max(float(np.linalg.eigvalsh(gram[np.ix_(q, q)])[-1]) for q in pairs)
        self._quiet_energy = np.float32(self._screen_energy / gain)
        self._calls: list[_Call | None] = []
        self._holding: set[int] = set()
        self._added: Bools = np.zeros(0, dtype=np.bool_)
        self._busy: Bools = np.zeros(0, dtype=np.bool_)
        # Each call's last block of samples: the block before the next batch's
        # first (steps 3 and 4), its Goertzel values computed only when needed.
        self._tail = np.zeros((0, self.block), dtype=np.int16)
        self._grow(_INITIAL_CAPACITY)

    def _setup_fits(self, vectors: Floats) -> None:
        """Per-digit tables for the least-squares fits of step 2 (and the twist fit of step 4).

        ``_measure`` gathers, for each block, 16 values of the block's digit:
        the Goertzel values (cos, -sin) of its row and column tones in this
        block and in the block before, and the Goertzel and ramp values of
        this block. ``_solve[digit]`` turns them into the three fits'
        coefficients at once, ``_tone_gram[digit]`` into each tone's energy.
        """
        gram = vectors.T @ vectors  # over [cos | -sin | ramp cos | ramp -sin]
        rows, cols = np.divmod(np.arange(16), 4)
        cols += 4
        self._tones = np.stack([rows, cols], axis=1)  # (16 digits, 2 tones)
        pair = np.stack([rows, rows + 8, cols, cols + 8], axis=1)
        wide = np.stack(
            [rows, rows + 8, rows + 16, rows + 24, cols, cols + 8, cols + 16, cols + 24], 1
        )
        # Where each value sits in _measure's (block, 48) array: current 16
        # Goertzel values, then the previous block's, then the current ramps.
        self._pick = np.hstack([pair, pair + 16, np.where(wide < 16, wide, wide + 16)])
        self._solve = np.zeros((16, 16, 16))
        self._tone_gram = np.zeros((16, 16, 16))
        for digit in range(16):
            g_pair = gram[np.ix_(pair[digit], pair[digit])]
            g_wide = gram[np.ix_(wide[digit], wide[digit])]
            inv_pair = np.linalg.inv(g_pair)
            self._solve[digit, :4, :4] = self._solve[digit, 4:8, 4:8] = inv_pair
            self._solve[digit, 8:, 8:] = np.linalg.inv(g_wide)
            for lo, size in ((0, 2), (2, 2), (4, 2), (6, 2), (8, 4), (12, 4)):
                block = slice(lo, lo + size)
                source = g_pair if lo < 8 else g_wide
                offset = lo % 4 if lo < 8 else lo - 8
                inner = slice(offset, offset + size)
                self._tone_gram[digit, block, block] = source[inner, inner]
        # Sums of (theta * y, theta * tone_gram * theta) giving: energy the fit
        # explains in this block; row and column energy now, and in the block
        # before; row and column energy of the fit with ramps.
        sums = np.zeros((32, 7))
        sums[0:4, 0] = 1.0
        for column, (lo, hi) in enumerate(((0, 2), (2, 4), (4, 6), (6, 8), (8, 12), (12, 16)), 1):
            sums[16 + lo : 16 + hi, column] = 1.0
        self._sums = sums

    # -- per-call state ----------------------------------------------------------

    def _grow(self, capacity: int) -> None:
        extra = capacity - len(self._calls)
        self._calls.extend([None] * extra)
        self._added = np.concatenate([self._added, np.zeros(extra, dtype=np.bool_)])
        self._busy = np.concatenate([self._busy, np.zeros(extra, dtype=np.bool_)])
        self._tail = np.vstack([self._tail, np.zeros((extra, self.block), dtype=np.int16)])

    def add(self, key: int) -> None:
        """Start tracking a call; ``key`` is a small non-negative int not in use."""
        if not 0 <= key < _MAX_KEY:
            raise UnknownKey(f"call keys are ints from 0 to {_MAX_KEY - 1}, not {key}")
        if key >= len(self._calls):
            self._grow(min(_MAX_KEY, max(2 * len(self._calls), key + 1)))
        if self._added[key]:
            raise UnknownKey(f"call key {key} is already in use")
        self._calls[key] = _Call()
        self._added[key] = True
        self._busy[key] = False
        self._tail[key] = 0

    def remove(self, key: int) -> None:
        """Stop tracking a call; its key may be added again."""
        if key not in self:
            raise UnknownKey(f"call key {key} is not in use")
        self._calls[key] = None
        self._added[key] = False
        self._busy[key] = False
        self._holding.discard(key)

    @property
    def held(self) -> AbstractSet[int]:
        """The keys whose digit is still sounding (reported, not yet released): few, even
        among thousands of calls. The recorder masks a call's tone while its key is here.

        A view that the next :meth:`process` changes: copy it to keep it.
        """
        return self._holding

    def __contains__(self, key: object) -> bool:
        return isinstance(key, int) and 0 <= key < len(self._calls) and bool(self._added[key])

    def __len__(self) -> int:
        return int(self._added.sum())

    # -- detection ---------------------------------------------------------------

    def process(
        self, keys: npt.NDArray[np.int64] | list[int], frames: npt.NDArray[np.int16]
    ) -> list[DigitDetected]:
        """Digits reported by this batch: one row of ``frames`` per key, keys distinct.

        ``frames`` has shape ``(len(keys), samples)`` with ``samples`` a whole
        number of 10 ms blocks (the media clock's 20 ms frame is two). Events
        come in the order of the block that completed them, then of ``keys``.
        """
        key_array = np.asarray(keys, dtype=np.int64).reshape(-1)
        pcm = np.asarray(frames)
        n = len(key_array)
        if pcm.ndim != 2 or pcm.shape[0] != n or pcm.shape[1] == 0 or pcm.shape[1] % self.block:
            raise BadFrame(
                f"expected frames of shape ({n}, k * {self.block}) at {self.sample_rate} Hz, "
                f"got {pcm.shape}"
            )
        if n == 0:
            return []
        if (
            key_array.min() < 0
            or key_array.max() >= len(self._calls)
            or not self._added[key_array].all()
        ):
            unknown = [int(k) for k in key_array if int(k) not in self]
            raise UnknownKey(f"call keys not added: {unknown[:10]}")
        blocks = pcm.shape[1] // self.block
        # Energy first: a call whose every block is quiet, with no digit in
        # progress, needs nothing more (it cannot pass the screen, see
        # ``_quiet_energy``), so the product runs only over the others.
        x = pcm.astype(np.float32).reshape(n * blocks, self.block)
        energy = np.einsum("ij,ij->i", x, x)
        loud = (energy >= self._quiet_energy).reshape(n, blocks).any(axis=1)
        loud |= self._busy[key_array]
        events: list[DigitDetected] = []
        live = np.flatnonzero(loud)
        if len(live) == n:
            events = self._detect(key_array, x, energy, blocks)
        elif len(live):
            x3 = x.reshape(n, blocks, self.block)[live]
            events = self._detect(
                key_array[live],
                x3.reshape(-1, self.block),
                energy.reshape(n, blocks)[live].reshape(-1),
                blocks,
            )
        self._tail[key_array] = pcm[:, -self.block :]
        return events

    def _detect(
        self, key_array: Ints, x: Floats32, energy: Floats32, blocks: int
    ) -> list[DigitDetected]:
        """Steps 1 to 5 for the calls that are not quiet: ``x`` their blocks, row by row."""
        n = len(key_array)
        # Step 1, the one matrix product: Goertzel values of every block of every call.
        coeffs = np.empty((n * blocks, 16), dtype=np.float32)
        # In slices small enough that BLAS stays on this thread: waking a
        # multi-threaded BLAS for a product this small costs milliseconds.
        step = _PRODUCT_MACS // (16 * self.block)
        for start in range(0, n * blocks, step):
            np.matmul(x[start : start + step], self._basis, out=coeffs[start : start + step])
        by_freq = coeffs.T.copy()
        by_freq *= by_freq
        power = by_freq[:8] + by_freq[8:]
        row_best = power[:4].max(axis=0)
        col_best = power[4:].max(axis=0)
        tones = row_best + col_best
        candidate = (tones >= self._screen_energy) & (tones >= self._screen_share * energy)
        candidate &= (row_best <= col_best * self._screen_normal) & (
            col_best <= row_best * self._screen_reverse
        )
        rows = np.flatnonzero(candidate.reshape(n, blocks).any(axis=1) | self._busy[key_array])
        if not len(rows):
            return []
        slots = key_array[rows]
        measured = self._measure(
            slots,
            coeffs.reshape(n, blocks, 16)[rows].astype(np.float64),
            energy.reshape(n, blocks)[rows].astype(np.float64),
            x.reshape(n, blocks, self.block)[rows].astype(np.float64),
        )
        return self._timing(slots.tolist(), blocks, measured)

    def _measure(
        self, slots: Ints, coeffs: Floats, energy: Floats, samples: Floats
    ) -> list[list[float]]:
        """Steps 2 and 3 for every block of the calls in ``slots``: one row per block."""
        m, blocks, _ = coeffs.shape
        count = m * blocks
        # Each block's 16 Goertzel values, the previous block's (the last of
        # the previous batch for the first), and the current block's ramps.
        prev = (self._tail[slots].astype(np.float32) @ self._basis).astype(np.float64)
        before = np.concatenate([prev[:, None], coeffs[:, :-1]], 1)
        ramps = samples @ self._ramp_basis
        values = np.concatenate([coeffs, before, ramps], axis=2).reshape(count, 48)
        power = values[:, :8] ** 2 + values[:, 8:16] ** 2
        digit = power[:, :4].argmax(axis=1) * 4 + power[:, 4:].argmax(axis=1)
        at = np.arange(count)[:, None]
        # Step 2: least-squares fits of the digit's tones, all three at once.
        y = values[at, self._pick[digit]]
        theta = (y[:, None] @ self._solve[digit])[:, 0]
        quadratic = theta * (theta[:, None] @ self._tone_gram[digit])[:, 0]
        sums = np.hstack([theta * y, quadratic]) @ self._sums
        np.maximum(sums, 0.0, out=sums)
        explained, e_row, e_col = sums[:, 0], sums[:, 1], sums[:, 2]
        unexplained = np.maximum(energy.reshape(count) - explained, 0.0)
        weaker = np.minimum(e_row, e_col)
        share = weaker / (weaker + unexplained + 1e-9)
        level = e_row + e_col
        valid = (level >= self._min_energy) & (share >= TONE_SHARE)
        valid &= (e_row <= e_col * self._block_normal) & (e_col <= e_row * self._block_reverse)
        present = (level >= self._hold_energy) & (share >= HOLD_TONE_SHARE)
        # Step 3: each tone's phase advance from the block before, against nominal.
        now = theta[:, 0:4:2] + 1j * theta[:, 1:4:2]  # (count, row/col)
        then = theta[:, 4:8:2] + 1j * theta[:, 5:8:2]
        advance = now * np.conj(then) * self._unrotate_pair[digit]
        linked = (np.abs(np.angle(advance)) <= self._tolerance_rad[digit]).all(axis=1)
        # Relative peaks over the 20 ms of both blocks, joined coherently: every
        # other frequency RELATIVE_PEAK_DB below the digit's tone of its group.
        joined = values[:, 16:24] + 1j * values[:, 24:32]
        joined += (values[:, :8] + 1j * values[:, 8:16]) * self._unrotate
        joined_power = joined.real**2 + joined.imag**2
        tones = self._tones[digit]
        ceiling = joined_power[at, tones] * self._relative_peak
        joined_power[at, tones] = 0.0
        linked &= (joined_power[:, :4] <= ceiling[:, :1]).all(axis=1)
        linked &= (joined_power[:, 4:] <= ceiling[:, 1:]).all(axis=1)
        amplitudes = np.sqrt(sums[:, 1:])
        table = np.column_stack([digit, valid, present, linked, amplitudes])
        rows: list[list[float]] = table.tolist()
        return rows

    def _timing(
        self, slots: list[int], blocks: int, rows: list[list[float]]
    ) -> list[DigitDetected]:
        """Steps 4 and 5: runs, reports and releases, block by block, per call."""
        found: list[tuple[int, int, DigitDetected]] = []
        span = blocks * self.block
        for i, key in enumerate(slots):
            call = self._calls[key]
            assert call is not None
            for b in range(blocks):
                row = rows[i * blocks + b]
                digit = int(row[_M_DIGIT])
                amp_row, amp_col = row[_M_AMP_ROW], row[_M_AMP_COL]
                amp = amp_row + amp_col
                if not row[_M_VALID]:
                    call.digit, call.blocks = -1, 0
                elif call.blocks and call.digit == digit and row[_M_LINKED]:
                    call.blocks += 1
                    call.amp_sum += amp
                    call.amp_max = max(call.amp_max, amp)
                    call.row_max = max(call.row_max, amp_row)
                    call.col_max = max(call.col_max, amp_col)
                    call.twist_row += row[_M_TWIST_ROW]
                    call.twist_col += row[_M_TWIST_COL]
                else:
                    # A new run. The block before counts by its tones' amplitude,
                    # unless it held this digit but broke the link: another tone.
                    fresh = not (call.blocks and call.digit == digit)
                    call.digit, call.blocks, call.start = digit, 1, b * self.block
                    call.amp_sum = call.amp_max = call.first_amp = amp
                    call.row_max, call.col_max = amp_row, amp_col
                    call.lead_row = row[_M_LEAD_ROW] if fresh else 0.0
                    call.lead_col = row[_M_LEAD_COL] if fresh else 0.0
                    call.twist_row, call.twist_col = row[_M_TWIST_ROW], row[_M_TWIST_COL]
                if call.held >= 0:
                    if digit == call.held and row[_M_PRESENT]:
                        call.missing = 0
                    else:
                        call.missing += 1
                        if call.missing >= RELEASE_BLOCKS:
                            call.held = -1
                if call.blocks >= 2 and call.digit != call.held:
                    onset = self._onset(call)
                    if onset is not None:
                        found.append((b, i, DigitDetected(key, DIGITS[call.digit], onset)))
                        call.held, call.missing = call.digit, 0
            call.start -= span
            self._busy[key] = call.digit >= 0 or call.held >= 0
            if call.held >= 0:
                self._holding.add(key)
            else:
                self._holding.discard(key)
        found.sort(key=lambda event: event[:2])
        return [event for _, _, event in found]

    def _onset(self, call: _Call) -> int | None:
        """The run's first sample if it is long enough and within twist, else ``None``."""
        lead = min(call.lead_row / call.row_max, call.lead_col / call.col_max, 1.0)
        if call.amp_sum / call.amp_max + lead < self._accept_blocks:
            return None
        twist = call.twist_row / max(call.twist_col, 1e-9)
        if not 1.0 / self._run_reverse <= twist <= self._run_normal:
            return None
        return round(call.start + self.block * (1.0 - call.first_amp / call.amp_max - lead))


def detect(pcm: Pcm, sample_rate: int) -> list[tuple[str, int]]:
    """Digits in a whole signal with the sample index of each tone's first sample.

    The signal is fed as 20 ms frames (padded with silence to the end of the
    last frame and 60 ms beyond, so that a tone at the very end is released),
    exactly as the media clock would feed one call.
    """
    detector = DtmfDetector(sample_rate)
    detector.add(0)
    frame = samples_per_frame(sample_rate)
    tail = (-len(pcm)) % frame + 3 * frame
    x = np.concatenate([np.asarray(pcm, dtype=np.int16), np.zeros(tail, dtype=np.int16)])
    found: list[tuple[str, int]] = []
    for start in range(0, len(x), frame):
        for event in detector.process([0], x[None, start : start + frame]):
            found.append((event.digit, start + event.onset))
    return found
