"""WebSocket message schema, per-connection state machine and the consultation hub."""
