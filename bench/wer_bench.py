"""Benchmark: word error rate and real-time factor of the transcription engine.

Renders a fixed set of call-centre sentences with espeak-ng (``en-us``, slow
and clear by default), takes each through the telephone path (resampled to
8 kHz, written as the caller channel of a stereo recording with a silent
agent channel and half a second of silence around the speech), transcribes it
with :func:`ivr.speech.transcribe.transcribe_samples` exactly as the worker does, and
prints, per sentence and in total:

* the word error rate, (substitutions + deletions + insertions) / reference
  words, after lower-casing and dropping punctuation;
* the real-time factor: CPU seconds of the transcribing process
  (``time.process_time``, which other processes on the machine do not
  inflate) per second of recording. The model is loaded before timing starts.

Synthetic speech is not callers' speech: the figures say how the engine does
on clean, slow, machine-read English over a telephone band, and let changes to
the pipeline be compared; they are not a promise about real calls. Run::

    .venv/bin/python bench/wer_bench.py [--rate 8000] [--speed 120] [--voice en-us]
"""

from __future__ import annotations

import argparse
import re
import time

import numpy as np

from ivr.speech import transcribe, tts
from media.resample import resample

SENTENCES = (
    "good morning I have a problem with my computer",
    "hello I need help with my account",
    "please call me back tomorrow morning",
    "I would like to pay my bill",
    "I need to reset my password",
    "good morning how are you today",
    "thank you very much for your help",
    "I want to cancel my subscription",
    "the weather is very nice today",
    "can I speak to a manager please",
    "my phone is not working",
    "what time does the store open",
    "I would like to change the delivery address for my order",
    "my internet connection is very slow today",
    "the printer in the office does not work",
    "can you tell me the balance of my account",
    "I have been waiting for my package for two weeks",
    "please send me a new credit card",
    "I think there is a mistake on my invoice",
    "thank you goodbye",
)


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z' ]", " ", text.lower()).split()


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    """Levenshtein distance over words: the errors of a word error rate."""
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        diagonal, row[0] = row[0], i
        for j, h in enumerate(hyp, start=1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (r != h))
    return row[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=8000, choices=(8000, 16000))
    parser.add_argument("--speed", type=int, default=120, help="espeak-ng words per minute")
    parser.add_argument("--voice", default="en-us")
    parser.add_argument(
        "--noise-floor",
        type=float,
        default=transcribe.NOISE_FLOOR,
        help="RMS of the noise floor the recogniser adds (0 to see what it is for)",
    )
    args = parser.parse_args()
    transcribe.NOISE_FLOOR = args.noise_floor

    model = transcribe.model_for("en")
    assert model is not None
    transcribe.recogniser(model)  # load the model before anything is timed

    quiet = np.zeros(args.rate // 2, dtype=np.int16)
    errors = ref_words = 0
    cpu_s = audio_s = 0.0
    print(f"{'errors':>6}  {'reference':<58}  recognised")
    for sentence in SENTENCES:
        samples, native = tts.render(sentence, args.voice, speed_wpm=args.speed)
        caller = np.concatenate([quiet, resample(samples, native, args.rate), quiet])
        stereo = np.stack([caller, np.zeros_like(caller)], axis=1)
        started = time.process_time()
        result = transcribe.transcribe_samples(stereo, args.rate, [], "en")
        cpu_s += time.process_time() - started
        audio_s += len(caller) / args.rate
        heard = " ".join(s.text for s in result.segments if s.channel == "caller")
        ref = words(sentence)
        wrong = edit_distance(ref, words(heard))
        errors += wrong
        ref_words += len(ref)
        print(f"{wrong:>3}/{len(ref):<2}  {sentence:<58}  {heard}")
    print()
    print(
        f"engine {transcribe.ENGINE}, model {model}, espeak-ng voice {args.voice} at "
        f"{args.speed} wpm, {args.rate} Hz, noise floor {args.noise_floor:g}"
    )
    print(f"sentences        {len(SENTENCES)}")
    print(f"word error rate  {errors / ref_words:.1%} ({errors} errors in {ref_words} words)")
    print(
        f"real-time factor {cpu_s / audio_s:.3f} CPU s per second of recording "
        f"({cpu_s:.1f} s for {audio_s:.1f} s, both channels)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
