"""Workers and nodes sharing consultations through Redis (DESIGN D8, docs/cluster.md).

Redis is the engine, nothing here is a cluster protocol of its own:
- `registry`: each node's liveness key (heartbeat, expiry) and load;
- `placement`: a consultation's lease (`SET` under a Lua script, expiry, epoch as fencing
  token), given to the least-loaded active node;
- `bus`: one pub/sub channel per node carrying relayed signalling, opaque;
- `revocations`: session revocations over pub/sub, so a logout on one node closes sockets on all;
- `fingerprint`: the key material every node must share, checked at start;
- `node`: one process's membership (heartbeat, lease renewal and fencing, drain).
"""
