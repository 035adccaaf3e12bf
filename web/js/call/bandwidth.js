// The server's `encoding` advice (docs/sfu.md "Bandwidth"): when what the other participants
// can receive stays low, the server asks this browser to send less on its camera
// (RTCRtpSender.setParameters: maxBitrate, scaleResolutionDownBy, maxFramerate), and to restore
// its own choice (every field null) when it recovers.
//
// Safari: setParameters takes the object getParameters returned (same transactionId), so every
// change starts from a fresh getParameters(); an older Safari refuses maxFramerate, so a refused
// change is retried without it. Nothing here renegotiates.

function cameraSender(session) {
  const peer = session.peer;
  const tr = peer && peer.videoTransceiver;
  return tr ? tr.sender : null;
}

async function apply(sender, advice, withFramerate) {
  const params = sender.getParameters();
  if (!params.encodings || !params.encodings.length) params.encodings = [{}];
  const enc = params.encodings[0];
  if (advice.max_bitrate != null) enc.maxBitrate = Math.round(advice.max_bitrate); else delete enc.maxBitrate;
  if (advice.scale_resolution_down_by != null) enc.scaleResolutionDownBy = advice.scale_resolution_down_by;
  else enc.scaleResolutionDownBy = 1;
  if (withFramerate && advice.max_framerate != null) enc.maxFramerate = advice.max_framerate;
  else delete enc.maxFramerate;
  await sender.setParameters(params);
}

export async function applyEncodingAdvice(sender, advice) {
  try {
    await apply(sender, advice, true);
    return true;
  } catch (err) {
    if (advice.max_framerate == null) throw err;
    await apply(sender, advice, false); // an older Safari: no maxFramerate
    return false;
  }
}

// Wires the advice to the session's camera sender; exposes the last one (tests, diagnostics)
// as session.encodingAdvice.
export function wireBandwidth(session) {
  let chain = Promise.resolve();
  const onMessage = (e) => {
    const msg = e.detail;
    if (!msg || msg.type !== 'encoding' || msg.kind !== 'video') return;
    session.encodingAdvice = msg;
    chain = chain.then(async () => {
      const sender = cameraSender(session);
      if (!sender) return;
      try {
        await applyEncodingAdvice(sender, msg);
        session.encodingApplied = msg;
      } catch (err) {
        console.warn('encoding advice not applied', err && err.name);
      }
    });
  };
  session.addEventListener('message', onMessage);
  return { destroy() { session.removeEventListener('message', onMessage); } };
}
