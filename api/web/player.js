// Plays the avatar's records in sync: AUDIO through Web Audio, each chunk scheduled at
// its timestamp on the audio clock; VIDEO (JPEG) decoded off the main thread and drawn
// on the canvas when the audio clock reaches the frame's timestamp. The worker stamps a
// frame and its audio with the same timestamp_ms, so this keeps lips and sound together.

const LEAD_SECONDS = 0.12; // jitter buffer: how far ahead of "now" the first record plays
const LATE_REBASE_SECONDS = 0.25; // audio later than this re-anchors the clock

export class Player {
  constructor(audioContext, canvas, onStats) {
    this.ctx = audioContext;
    this.canvas = canvas;
    this.draw2d = canvas.getContext("2d");
    this.onStats = onStats;
    this.reset();
    requestAnimationFrame(() => this.tick());
  }

  reset() {
    this.base = null; // {at: audio clock seconds, ts: timestamp_ms} anchoring the timeline
    this.frames = []; // decoded frames waiting for their time, in timestamp order
    this.sources = [];
    this.lastIndex = null;
    this.stats = { framesShown: 0, dropped: 0, offsetMs: null, fps: 0, firstFrameAt: null };
    this.shownAt = [];
  }

  when(ts) {
    if (this.base === null) this.base = { at: this.ctx.currentTime + LEAD_SECONDS, ts };
    return this.base.at + (ts - this.base.ts) / 1000;
  }

  audio(header, blob) {
    const rate = header.sample_rate || 16000;
    const samples = new Int16Array(blob.buffer.slice(blob.byteOffset, blob.byteOffset + blob.byteLength));
    if (samples.length === 0) return;
    let at = this.when(header.timestamp_ms ?? 0);
    if (at < this.ctx.currentTime - LATE_REBASE_SECONDS) {
      this.base = null; // we fell behind (a stalled tab): start a fresh timeline
      at = this.when(header.timestamp_ms ?? 0);
    }
    const buffer = this.ctx.createBuffer(1, samples.length, rate);
    const channel = buffer.getChannelData(0);
    for (let i = 0; i < samples.length; i++) channel[i] = samples[i] / 32768;
    const source = this.ctx.createBufferSource();
    source.buffer = buffer;
    source.connect(this.ctx.destination);
    source.start(Math.max(at, this.ctx.currentTime));
    this.sources.push(source);
    source.onended = () => { this.sources = this.sources.filter((s) => s !== source); };
  }

  async video(header, blob) {
    const index = header.frame_index;
    if (this.lastIndex !== null && index > this.lastIndex + 1) {
      this.stats.dropped += index - this.lastIndex - 1; // the worker dropped late frames
    }
    this.lastIndex = Math.max(this.lastIndex ?? index, index);
    const at = this.when(header.timestamp_ms ?? 0);
    const bitmap = await createImageBitmap(new Blob([blob], { type: "image/jpeg" }));
    this.frames.push({ at, bitmap });
    this.frames.sort((a, b) => a.at - b.at);
  }

  // Drop what is scheduled but not yet heard or seen (INTERRUPT, End).
  clear() {
    for (const source of this.sources) { try { source.stop(); } catch (_) { /* ended */ } }
    this.sources = [];
    for (const frame of this.frames) frame.bitmap.close();
    this.frames = [];
    this.base = null;
  }

  tick() {
    // Audio scheduled at t is heard at t + outputLatency: show pictures on that clock.
    const now = this.ctx.currentTime - (this.ctx.outputLatency || 0);
    let due = null;
    while (this.frames.length && this.frames[0].at <= now) {
      if (due) { due.bitmap.close(); this.stats.dropped += 1; } // overtaken: never shown
      due = this.frames.shift();
    }
    if (due) this.show(due, now);
    requestAnimationFrame(() => this.tick());
  }

  show(frame, now) {
    const { bitmap } = frame;
    if (this.canvas.width !== bitmap.width || this.canvas.height !== bitmap.height) {
      this.canvas.width = bitmap.width;
      this.canvas.height = bitmap.height;
    }
    this.draw2d.drawImage(bitmap, 0, 0);
    bitmap.close();
    const wall = performance.now();
    this.stats.framesShown += 1;
    this.stats.firstFrameAt ??= wall;
    // How far the picture lags the sound it belongs to (positive: video late), as heard.
    this.stats.offsetMs = Math.round((now - frame.at) * 1000);
    this.shownAt.push(wall);
    while (this.shownAt.length && this.shownAt[0] < wall - 1000) this.shownAt.shift();
    this.stats.fps = this.shownAt.length;
    this.onStats(this.stats);
  }
}
