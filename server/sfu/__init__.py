"""Encoded-media SFU (layer 4): see docs/sfu.md. Entry point: server.sfu.room.SfuRoom."""
