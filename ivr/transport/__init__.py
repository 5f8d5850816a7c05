"""The wire edges of docs/protocol.md: the WebSocket endpoints (and, next, SIP and RTP)."""
