"""Matching a recording's caller channel against what was sent, on made-up arrays."""

from __future__ import annotations

import numpy as np

from ivr.load.audio import expected_talk, heard, wire_codec
from ivr.load.verify import check_caller_channel

N = 160
CODEC = wire_codec("pcm_s16le", 8000)
SENT = expected_talk(CODEC, 10, 77, None)
SILENT = np.zeros(N, dtype=np.int16)


def channel(*frames: np.ndarray) -> np.ndarray:
    return np.concatenate(frames)


def test_exactly_what_was_sent_with_silence_around_and_between() -> None:
    # The server writes silence for ticks before the talk, after it, and when a frame was late.
    left = channel(SILENT, SILENT, *SENT[:4], SILENT, *SENT[4:], SILENT)
    assert check_caller_channel(left, SENT, N) is None


def test_frames_out_of_order_are_caught() -> None:
    swapped = [*SENT[:3], SENT[4], SENT[3], *SENT[5:]]
    assert (
        check_caller_channel(channel(*swapped), SENT, N)
        == "caller channel: talk frame 3 of 10 holds sent frame 4"
    )


def test_audio_never_sent_is_caught() -> None:
    wrong = [*SENT[:6], np.full(N, 99, dtype=np.int16), *SENT[7:]]
    assert (
        check_caller_channel(channel(*wrong), SENT, N)
        == "caller channel: talk frame 6 of 10 holds audio never sent"
    )


def test_missing_and_extra_frames_are_caught() -> None:
    assert (
        check_caller_channel(channel(*SENT[:8]), SENT, N)
        == "caller channel: 2 of the 10 frames sent are not recorded"
    )
    assert (
        check_caller_channel(channel(*SENT[1:]), SENT, N)
        == "caller channel: talk frame 0 of 10 holds sent frame 1"
    )
    extra = channel(*SENT, SENT[0])
    assert (
        check_caller_channel(extra, SENT, N)
        == "caller channel: 11 frames of audio, but only 10 were sent"
    )


def test_a_recording_cut_by_the_agent_may_miss_a_few_tail_frames() -> None:
    left = channel(*SENT[:7])
    assert check_caller_channel(left, SENT, N, complete=False, tail_slack=3) is None
    assert check_caller_channel(left, SENT, N, complete=False, tail_slack=2) is not None


def test_the_tail_of_a_dtmf_tone_before_the_talk_is_skipped() -> None:
    tone = np.full(N, 500, dtype=np.int16)
    left = channel(tone, SILENT, *SENT)
    assert check_caller_channel(left, SENT, N, lead_ignore=[tone]) is None
    assert check_caller_channel(left, SENT, N) is not None


def test_a_law_silence_counts_as_silence() -> None:
    codec = wire_codec("pcma", 8000)
    sent = expected_talk(codec, 5, 3, None)
    silence = heard(codec, SILENT)
    left = channel(silence, *sent[:2], SILENT, *sent[2:], silence)
    assert check_caller_channel(left, sent, N, silence=silence) is None
    assert check_caller_channel(left, sent, N) is not None
