"""Encoded-media SFU (layer 4): see docs/sfu.md. Entry points: server.sfu.runtime
(`setup_media_runtime`, once per process) and server.sfu.room.SfuRoom; it takes and gives the
typed values of server.sfu.messages (their JSON lives in server/signalling/media.py)."""
