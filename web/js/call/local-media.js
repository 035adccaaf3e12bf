// Local camera and microphone: acquisition with chosen devices, device lists, error kinds.

export function mediaErrorKind(err) {
  const name = err && err.name;
  if (name === 'NotAllowedError' || name === 'SecurityError' || name === 'PermissionDeniedError') return 'denied';
  if (name === 'NotFoundError' || name === 'OverconstrainedError' || name === 'DevicesNotFoundError') return 'no-device';
  if (name === 'NotReadableError' || name === 'TrackStartError') return 'busy';
  return 'other';
}

function constraint(deviceId, base) {
  if (deviceId) return { ...base, deviceId: { exact: deviceId } };
  return Object.keys(base).length ? base : true;
}

const VIDEO = { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 20, max: 30 } };

export function videoConstraints(deviceId) { return constraint(deviceId, VIDEO); }
export function audioConstraints(deviceId) { return constraint(deviceId, { echoCancellation: true, noiseSuppression: true }); }

// Try camera+microphone, then each alone. Returns {stream, error} where error is the kind of the
// first failure ('denied' stops at once: asking again would fail the same way).
export async function acquireMedia({ cameraId = '', microphoneId = '', wantVideo = true, wantAudio = true } = {}) {
  const attempts = [];
  if (wantVideo && wantAudio) attempts.push({ video: videoConstraints(cameraId), audio: audioConstraints(microphoneId) });
  if (wantAudio) attempts.push({ audio: audioConstraints(microphoneId) });
  if (wantVideo) attempts.push({ video: videoConstraints(cameraId) });
  let firstError = null;
  for (const c of attempts) {
    try {
      const stream = await navigator.mediaDevices.getUserMedia(c);
      return { stream, error: firstError };
    } catch (err) {
      const kind = mediaErrorKind(err);
      if (!firstError) firstError = kind;
      if (kind === 'denied') break;
    }
  }
  return { stream: null, error: firstError || 'no-device' };
}

export async function listDevices() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return { cameras: [], microphones: [] };
  const devices = await navigator.mediaDevices.enumerateDevices();
  return {
    cameras: devices.filter((d) => d.kind === 'videoinput'),
    microphones: devices.filter((d) => d.kind === 'audioinput'),
  };
}

// Fill a <select> with devices, keeping `selected` when present. Labels come from the browser.
export function fillDeviceSelect(select, devices, selected, fallbackLabel) {
  select.replaceChildren();
  devices.forEach((d, i) => {
    const option = document.createElement('option');
    option.value = d.deviceId;
    option.textContent = d.label || `${fallbackLabel} ${i + 1}`;
    select.append(option);
  });
  if (selected && devices.some((d) => d.deviceId === selected)) select.value = selected;
  select.disabled = devices.length === 0;
}

// Remember the chosen devices for a reload during the consultation (not secret).
export function savedDevices() {
  try { return JSON.parse(sessionStorage.getItem('tc_devices') || '{}'); } catch { return {}; }
}
export function saveDevices(devices) {
  try { sessionStorage.setItem('tc_devices', JSON.stringify(devices)); } catch { /* ignore */ }
}
