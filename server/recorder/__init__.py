"""The live recording, layer 4: per-consultation consent controller, recording session,
WebM muxer and timeline, fed by the SFU's forwarded packets. The rules, file crypto, keys,
evidence and the recordings catalogue are layer 3, in server/recording/."""
