"""Speech out: text to 16 kHz audio with word and phoneme timing."""
