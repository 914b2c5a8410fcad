"""Audio in and out: the fixed wire format, devices (live and file-backed), echo cancelling, playback buffer."""
