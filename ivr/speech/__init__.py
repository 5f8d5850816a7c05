"""Speech: prompts rendered from text (TTS), and offline transcription of recordings."""
