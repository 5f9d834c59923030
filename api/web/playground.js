// The playground: one Pipecat relay session at a time, exactly as the official client
// runs it — POST /v1/pipecat/sessions, then the media WebSocket with the media token as
// a subprotocol — fed by the microphone (AudioWorklet → PCM16) or a WAV, and played
// back in sync by Player.
import { Kind, decode, encode } from "/web/records.js";
import { Player } from "/web/player.js";

const $ = (id) => document.getElementById(id);
const CHUNK_SECONDS = 0.1; // a WAV is streamed in real time, 100 ms per AUDIO record
const POLL_MS = 1000;

const state = {
  config: null, key: null, ctx: null, player: null,
  session: null, // {id, socket, rate, open: Promise}
  mic: null, // {stream, node}
  sample: null, // interval id of the WAV being streamed
  startedAt: null, sentSeconds: 0,
};
window.playground = { state, stats: () => state.player?.stats ?? null };

function say(text, error = false) {
  const el = $("status");
  el.textContent = text;
  el.classList.toggle("error", error);
}

async function api(method, path, body, isForm = false) {
  const headers = { Authorization: `Bearer ${apiKey()}` };
  if (body !== undefined && !isForm) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, body: body === undefined ? undefined : isForm ? body : JSON.stringify(body),
  });
  const data = response.status === 204 ? null : await response.json();
  if (!response.ok) {
    const error = data?.error ?? {};
    throw new Error(`${error.code ?? response.status}: ${error.message ?? "request failed"}`);
  }
  return data;
}

function apiKey() {
  return state.config.api_key ?? $("api-key").value.trim();
}

// ── Setup ──────────────────────────────────────────────────────────────────────

async function load() {
  state.config = await (await fetch("/playground/config")).json();
  if (state.config.api_key === null) {
    $("key-panel").hidden = false;
    $("api-key").value = sessionStorage.getItem("protoface.key") ?? "";
    $("api-key").addEventListener("change", () => {
      sessionStorage.setItem("protoface.key", $("api-key").value.trim());
      loadAvatars();
    });
  }
  // The avatar model by default: the first impression is a face, not the test pattern.
  fill($("quality"), state.config.qualities.map((q) => [q, q]), "standard");
  fill($("sample"), state.config.samples.map((s) => [s.url, s.name]));
  $("upload").hidden = !state.config.avatars_api;
  $("upload-off").hidden = state.config.avatars_api;
  await loadAvatars();
  $("start").onclick = () => run(ensureSession);
  $("talk").onclick = () => run(toggleMic);
  $("play").onclick = () => run(playSample);
  $("interrupt").onclick = () => run(interrupt);
  $("end").onclick = () => run(endSession);
  $("upload").onsubmit = (event) => { event.preventDefault(); run(uploadAvatar); };
}

function fill(select, options, selected) {
  select.replaceChildren(...options.map(([value, text, disabled]) => {
    const option = new Option(text, value, false, value === selected);
    option.disabled = Boolean(disabled);
    return option;
  }));
}

async function loadAvatars(selected) {
  let avatars = state.config.stock_avatars.map((a) => ({ ...a, status: "ready" }));
  if (state.config.avatars_api && apiKey()) {
    avatars = (await api("GET", "/v1/avatars?limit=100")).data;
  }
  fill($("avatar"), avatars.map((a) => [
    a.id, a.status === "ready" ? `${a.name} (${a.id})` : `${a.name} — ${a.status}`,
    a.status !== "ready",
  ]), selected);
}

async function run(action) {
  try {
    await action();
  } catch (error) {
    say(error.message, true);
  }
}

function audioContext(rate) {
  // One context at the relay's rate: the browser resamples the microphone and WAVs.
  if (state.ctx === null) {
    state.ctx = new AudioContext({ sampleRate: rate, latencyHint: "interactive" });
    state.player = new Player(state.ctx, $("video"), showStats);
  }
  return state.ctx;
}

// ── The session ────────────────────────────────────────────────────────────────

async function ensureSession() {
  if (state.session) return state.session.open;
  const ctx = audioContext(16000);
  await ctx.resume();
  state.startedAt = performance.now();
  state.sentSeconds = 0;
  state.player.reset();
  say("Creating a session…");
  const created = await api("POST", "/v1/pipecat/sessions", {
    avatar_id: $("avatar").value, quality: $("quality").value,
  });
  const { relay } = created;
  const socket = new WebSocket(relay.media_url, [relay.protocol, relay.media_token]);
  socket.binaryType = "arraybuffer";
  const session = { id: created.session.id, socket, rate: relay.audio_sample_rate };
  state.session = session;
  $("session-id").textContent = session.id;
  session.open = new Promise((resolve, reject) => {
    socket.onopen = () => { say("Connected — waiting for the avatar…"); resolve(session); };
    socket.onerror = () => reject(new Error("The media socket failed."));
  });
  socket.onmessage = (event) => onRecord(decode(event.data));
  socket.onclose = (event) => closed(session, event);
  buttons(true);
  return session.open;
}

function onRecord(record) {
  switch (record.kind) {
    case Kind.VIDEO: state.player.video(record.header, record.blob); break;
    case Kind.AUDIO: state.player.audio(record.header, record.blob); break;
    case Kind.READY: say("The avatar is live."); break;
    case Kind.ERROR: say(`${record.header.code}: ${record.header.message}`, true); break;
    default: break;
  }
}

function send(kind, header, blob) {
  const socket = state.session?.socket;
  if (socket?.readyState === WebSocket.OPEN) socket.send(encode(kind, header, blob));
}

function sendSpeech(pcm16) {
  if (!state.session) return; // a chunk still in flight from the worklet after End
  const rate = state.session.rate;
  send(Kind.AUDIO, { sample_rate: rate, num_channels: 1 }, new Uint8Array(pcm16.buffer));
  state.sentSeconds += pcm16.length / rate;
  $("stat-sent").textContent = state.sentSeconds.toFixed(1);
}

async function toggleMic() {
  if (state.mic) return stopMic();
  const session = await ensureSession();
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true },
  });
  const ctx = state.ctx;
  await ctx.audioWorklet.addModule("/web/capture-worklet.js");
  const node = new AudioWorkletNode(ctx, "pcm16-capture", {
    processorOptions: { targetRate: session.rate },
  });
  node.port.onmessage = (event) => sendSpeech(new Int16Array(event.data));
  const silent = ctx.createGain(); // keeps the worklet pulled without playing the mic
  silent.gain.value = 0;
  ctx.createMediaStreamSource(stream).connect(node).connect(silent).connect(ctx.destination);
  state.mic = { stream, node };
  $("talk").textContent = "Stop talking";
  say("Listening to your microphone…");
}

function stopMic() {
  if (!state.mic) return;
  state.mic.stream.getTracks().forEach((track) => track.stop());
  state.mic.node.port.onmessage = null;
  state.mic.node.disconnect();
  state.mic = null;
  $("talk").textContent = "Talk";
  send(Kind.FLUSH);
}

async function playSample() {
  const session = await ensureSession();
  const file = $("sample-file").files[0];
  const bytes = file ? await file.arrayBuffer() : await (await fetch($("sample").value)).arrayBuffer();
  const decoded = await state.ctx.decodeAudioData(bytes);
  const pcm = await toPcm16(decoded, session.rate);
  stopSample();
  const step = Math.round(session.rate * CHUNK_SECONDS);
  let offset = 0;
  const next = () => {
    if (offset >= pcm.length || state.session !== session) { stopSample(); send(Kind.FLUSH); return; }
    sendSpeech(pcm.slice(offset, offset + step));
    offset += step;
  };
  next();
  state.sample = setInterval(next, CHUNK_SECONDS * 1000);
  say(`Playing ${file ? file.name : $("sample").selectedOptions[0].text}…`);
}

function stopSample() {
  if (state.sample !== null) clearInterval(state.sample);
  state.sample = null;
}

async function toPcm16(buffer, rate) {
  // Mix down and resample with an OfflineAudioContext (the browser's own resampler).
  const length = Math.ceil(buffer.duration * rate);
  const offline = new OfflineAudioContext(1, length, rate);
  const source = offline.createBufferSource();
  source.buffer = buffer;
  source.connect(offline.destination);
  source.start();
  const mono = (await offline.startRendering()).getChannelData(0);
  const pcm = new Int16Array(mono.length);
  for (let i = 0; i < mono.length; i++) pcm[i] = Math.max(-32768, Math.min(32767, Math.round(mono[i] * 32767)));
  return pcm;
}

function interrupt() {
  stopSample();
  send(Kind.INTERRUPT);
  state.player.clear();
  say("Interrupted.");
}

async function endSession() {
  const session = state.session;
  if (!session) return;
  stopSample();
  stopMic();
  say("Ending…");
  await api("POST", `/v1/sessions/${session.id}/end`, {});
  session.socket.close(1000);
}

function closed(session, event) {
  if (state.session !== session) return;
  stopSample();
  stopMic();
  state.session = null;
  state.player.clear();
  buttons(false);
  say(event.code === 1000 || event.code === 1005 ? "Session ended." : `Socket closed (${event.code} ${event.reason}).`,
      event.code !== 1000 && event.code !== 1005);
}

function buttons(live) {
  $("interrupt").disabled = !live;
  $("end").disabled = !live;
  $("start").disabled = live;
  $("avatar").disabled = live;
  $("quality").disabled = live;
}

function showStats(stats) {
  if (stats.firstFrameAt !== null && state.startedAt !== null) {
    $("stat-first-frame").textContent = Math.round(stats.firstFrameAt - state.startedAt);
  }
  $("stat-fps").textContent = stats.fps;
  $("stat-offset").textContent = stats.offsetMs ?? "–";
  $("stat-dropped").textContent = stats.dropped;
  $("stat-frames").textContent = stats.framesShown;
}

// ── Avatar upload (the avatars API) ────────────────────────────────────────────

async function uploadAvatar() {
  const image = $("upload-image").files[0];
  if (!image) throw new Error("Choose a portrait image first.");
  const form = new FormData();
  form.append("image", image);
  form.append("name", $("upload-name").value.trim() || image.name);
  const status = $("upload-status");
  let avatar = await api("POST", "/v1/avatars", form, true);
  status.dataset.avatarId = avatar.id;
  while (avatar.status === "processing") {
    status.innerHTML = `<span class="pill processing">processing</span> <code>${avatar.id}</code>`;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    avatar = await api("GET", `/v1/avatars/${avatar.id}`);
  }
  status.dataset.status = avatar.status;
  const reason = avatar.status === "failed" ? ` — ${avatar.failure_reason ?? "no reason given"}` : "";
  status.innerHTML = `<span class="pill ${avatar.status}">${avatar.status}</span> <code>${avatar.id}</code>`;
  status.append(reason);
  if (avatar.status === "ready") await loadAvatars(avatar.id);
}

load().catch((error) => say(error.message, true));
