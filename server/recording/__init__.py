"""Recording rules and stored recordings, layer 3: consent state machine, file crypto, data
keys and keyring, consent evidence, the recordings catalogue (service). The live half (muxer,
session, controller) is layer 4, in server/recorder/."""
