// The device check before joining: camera preview, device pickers, microphone level meter,
// and plain help when permission is denied or no device exists.

import { t } from '../i18n.js';
import { AudioMeter } from '../call/audio-meter.js';
import { acquireMedia, fillDeviceSelect, listDevices, saveDevices, savedDevices } from '../call/local-media.js';

function $(id) { return document.getElementById(id); }

export class DeviceCheck {
  constructor() {
    this.stream = null;
    this.error = null;
    this.meter = new AudioMeter($('dc-level'));
    this.choice = savedDevices();
    this.generation = 0;
    this.pending = Promise.resolve();
    $('dc-retry').addEventListener('click', () => this.start());
    $('dc-camera').addEventListener('change', (e) => { this.choice.cameraId = e.target.value; this.start(); });
    $('dc-microphone').addEventListener('change', (e) => { this.choice.microphoneId = e.target.value; this.start(); });
    document.addEventListener('pointerdown', () => this.meter.resume(), { once: true });
  }

  // (Re)acquire the camera and microphone. The latest call wins: a stream that arrives after a
  // newer start() (a device change while the first was still opening) is stopped, not shown.
  start() {
    const run = this.acquire(++this.generation);
    this.pending = run;
    return run;
  }

  // Resolves once the newest acquisition has finished (whatever its outcome). Joining waits for
  // it: a Join pressed while the camera is still opening (or its permission prompt is still up)
  // must not join with no tracks; the offer would then carry none for the whole call.
  settled() {
    return this.pending.catch(() => {});
  }

  async acquire(generation) {
    this.stopTracks();
    const { stream, error } = await acquireMedia({ cameraId: this.choice.cameraId || '', microphoneId: this.choice.microphoneId || '' });
    if (generation !== this.generation) {
      if (stream) for (const tr of stream.getTracks()) tr.stop();
      return;
    }
    this.stream = stream;
    this.error = stream ? null : error;
    const hasVideo = !!(stream && stream.getVideoTracks().length);
    const hasAudio = !!(stream && stream.getAudioTracks().length);
    $('preview').srcObject = hasVideo ? stream : null;
    $('preview-off').hidden = hasVideo;
    $('dc-denied').hidden = this.error !== 'denied';
    $('dc-nodevice').hidden = hasVideo || hasAudio || this.error === 'denied';
    $('dc-retry').hidden = hasVideo && hasAudio;
    // Nothing to measure or pick without a device: the help and "Try again" stay in view instead.
    $('dc-level-field').hidden = !hasAudio;
    $('dc-devices').hidden = !hasVideo && !hasAudio;
    const submit = $('join-submit');
    submit.dataset.i18n = hasVideo || hasAudio ? 'join.submit' : 'join.submitWithout';
    submit.textContent = t(submit.dataset.i18n);
    if (hasAudio) this.meter.attach(stream); else this.meter.detach();
    const { cameras, microphones } = await listDevices();
    const v = hasVideo ? stream.getVideoTracks()[0].getSettings().deviceId : this.choice.cameraId;
    const a = hasAudio ? stream.getAudioTracks()[0].getSettings().deviceId : this.choice.microphoneId;
    fillDeviceSelect($('dc-camera'), cameras.filter((d) => d.deviceId), v, t('join.deviceCheck.camera'));
    fillDeviceSelect($('dc-microphone'), microphones.filter((d) => d.deviceId), a, t('join.deviceCheck.microphone'));
  }

  result() {
    if (!this.stream) return this.error ? 'failed' : 'skipped';
    return this.stream.getVideoTracks().length && this.stream.getAudioTracks().length ? 'passed' : 'failed';
  }

  localMedia() {
    const stream = this.stream || new MediaStream();
    return { stream, audioTrack: stream.getAudioTracks()[0] || null, videoTrack: stream.getVideoTracks()[0] || null };
  }

  saveChoice() {
    const lm = this.localMedia();
    saveDevices({
      cameraId: lm.videoTrack ? lm.videoTrack.getSettings().deviceId : '',
      microphoneId: lm.audioTrack ? lm.audioTrack.getSettings().deviceId : '',
    });
  }

  stopMeter() { this.meter.close(); $('preview').srcObject = null; }

  stopTracks() {
    if (this.stream) for (const tr of this.stream.getTracks()) tr.stop();
    this.stream = null;
  }

  stop() { this.stopMeter(); this.stopTracks(); }
}
