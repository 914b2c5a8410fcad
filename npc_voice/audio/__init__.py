"""Audio in and out: wire format, live and file-backed devices, echo cancelling, playback buffer."""
