"""The game side: a pygame component that streams the microphone and drives animation."""
