"""Prompt audio, decoded and resampled once at start-up and shared by all calls.

Each prompt is held as PCM at every call rate, padded to whole 20 ms frames,
with the SHA-256 of exactly the samples a caller hears at that rate (the
consent evidence of docs/compliance.md names it). Wire encodings per codec are
built on first use and kept, so the media clock only slices a list.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ivr.config import PromptSource
from ivr.errors import InvalidConfig, Problem, TtsError
from ivr.speech import tts
from media.errors import MediaError
from media.frame import SAMPLE_RATES, Codec, Pcm, samples_per_frame
from media.resample import resample
from media.wavfile import read_mono


@dataclass(slots=True)
class Prompt:
    """One prompt's audio at every call rate."""

    id: str
    pcm: dict[int, Pcm]
    sha256: dict[int, str]
    _wire: dict[Codec, list[bytes]] = field(default_factory=dict)
    _frames: dict[int, list[Pcm]] = field(default_factory=dict)

    def frame_count(self, sample_rate: int) -> int:
        return len(self.pcm[sample_rate]) // samples_per_frame(sample_rate)

    def duration_ms(self) -> int:
        return self.frame_count(8000) * 20

    def pcm_frame(self, sample_rate: int, index: int) -> Pcm:
        n = samples_per_frame(sample_rate)
        return self.pcm[sample_rate][index * n : (index + 1) * n]

    def pcm_frames(self, sample_rate: int) -> list[Pcm]:
        """The prompt as 20 ms frames of PCM at ``sample_rate`` (views, listed once)."""
        frames = self._frames.get(sample_rate)
        if frames is None:
            frames = [self.pcm_frame(sample_rate, i) for i in range(self.frame_count(sample_rate))]
            self._frames[sample_rate] = frames
        return frames

    def wire_frames(self, codec: Codec) -> list[bytes]:
        """The prompt as encoded 20 ms frames for ``codec`` (built once)."""
        frames = self._wire.get(codec)
        if frames is None:
            rate = codec.sample_rate
            frames = [codec.encode(self.pcm_frame(rate, i)) for i in range(self.frame_count(rate))]
            self._wire[codec] = frames
        return frames


def make_prompt(prompt_id: str, samples: Pcm, source_rate: int) -> Prompt:
    """Resample ``samples`` to every call rate and pad to whole frames."""
    pcm: dict[int, Pcm] = {}
    digests: dict[int, str] = {}
    for rate in SAMPLE_RATES:
        x = samples if rate == source_rate else resample(samples, source_rate, rate)
        n = samples_per_frame(rate)
        padded = np.zeros(-(-len(x) // n) * n or n, dtype=np.int16)
        padded[: len(x)] = x
        padded.setflags(write=False)
        pcm[rate] = padded
        digests[rate] = hashlib.sha256(padded.tobytes()).hexdigest()
    return Prompt(prompt_id, pcm, digests)


class PromptLibrary:
    """Every prompt a config names, ready to play."""

    def __init__(self, prompts: Mapping[str, Prompt]) -> None:
        self._prompts = dict(prompts)

    def __contains__(self, prompt_id: object) -> bool:
        return prompt_id in self._prompts

    def add(self, prompt: Prompt) -> None:
        """Add a prompt loaded later (a flow or team changed through the API)."""
        self._prompts.setdefault(prompt.id, prompt)

    def get(self, prompt_id: str) -> Prompt:
        return self._prompts[prompt_id]

    def ids(self) -> list[str]:
        return sorted(self._prompts)

    @classmethod
    def load(
        cls, sources: Mapping[str, PromptSource], cache_dir: Path, source: str
    ) -> PromptLibrary:
        """Decode (or render) every prompt; :class:`InvalidConfig` names any that fail."""

        prompts: dict[str, Prompt] = {}
        problems: list[Problem] = []
        for pid, src in sorted(sources.items()):
            try:
                if src.tts is not None:
                    path = tts.render_cached(
                        src.tts.tts, src.tts.voice, cache_dir, speed_wpm=src.tts.speed_wpm
                    )
                else:
                    assert src.path is not None
                    path = src.path
                samples, rate = read_mono(path)
                prompts[pid] = make_prompt(pid, samples, rate)
            except (MediaError, TtsError) as exc:
                problems.append(Problem(f"prompt {pid}", str(exc)))
        if problems:
            raise InvalidConfig(source, problems)
        return cls(prompts)
