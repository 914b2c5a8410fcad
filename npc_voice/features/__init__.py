"""Features of the player's audio: voice activity, speech recognition, sentence meaning, prosody."""
