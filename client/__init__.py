"""Python participant client (aiortc + aiohttp) for tests and benchmarks: joins through the
real HTTP + WebSocket API as a patient (invite link) or as the host doctor (room token), and
publishes generated or pre-encoded media. See participant.py, peer.py, media.py."""
