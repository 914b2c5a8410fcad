"""The edges: wire protocol (msgpack over ZeroMQ), the sidecar server and the game-side client."""
