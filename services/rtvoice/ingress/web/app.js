// rtvoice web caller: caller protocol v1 (docs/caller-protocol.md) in the browser, no build step.
//
// URL parameters: token (required unless the server runs --no-auth), agent=NAMESPACE/NAME (default: the
// server's), aec/ns/agc=0|1 (microphone processing, default on), in=pcm16_16k|pcm16_24k (default
// pcm16_16k), out=pcm16_16k|pcm16_24k (default pcm16_24k), autostart=1.
// window.rtvoiceStats exposes counters for tests and debugging (played samples, underruns, marks ...).

const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);
const PCM_RATES = { pcm16_16k: 16000, pcm16_24k: 24000 };

const stats = {
  state: "idle",
  sessionId: null,
  framesSent: 0,
  bytesReceived: 0,
  playedSamples: 0,
  bufferedSamples: 0,
  underruns: 0,
  clears: 0,
  marksSent: 0,
  lastMark: null,
  itemPlayedMs: {},
  lastClear: null,
  latenciesMs: [],
  serverLatenciesMs: [],
  errors: [],
  transcript: [],
  endedReason: null,
  outputRate: 0,
};
window.rtvoiceStats = stats;

const ENDED_WORDS = {
  caller_hangup: "Call ended.",
  caller_disconnected: "Call ended.",
  idle_timeout: "Call ended: nothing was heard for a while.",
  max_duration: "Call ended: the maximum call length was reached.",
  bridge_lost: "Call dropped: the agent's service went away. Try calling again.",
  agent_unreachable: "The agent could not be reached. Try again in a moment.",
  server_shutdown: "The server is restarting. Call again to continue.",
  slow_consumer: "Call ended: the connection was too slow to keep up.",
};
const ERROR_WORDS = {
  agent_unreachable: "The agent is not reachable right now (it may not exist or is not running).",
  bridge_lost: "The connection to the agent was lost.",
  reconnect: "The server is restarting; please call again.",
  rate_limited: "Too much data sent too fast; some audio was skipped.",
  invalid_api_key: "The agent's provider refused its credentials. Tell the agent's owner.",
};

let call = null; // the live call, see startCall()

function setState(state, text) {
  stats.state = state;
  const el = $("state");
  el.className = `state ${state}`;
  el.textContent = text;
}

function say(text, isError = false) {
  const el = $("message");
  el.textContent = text;
  el.className = isError ? "message error" : "message";
}

function setLive(live) {
  $("call").disabled = live;
  for (const id of ["hangup", "interrupt", "text", "send", "steer"]) $(id).disabled = !live;
}

function flag(name, checkbox) {
  const v = params.get(name);
  if (v !== null) $(checkbox).checked = v !== "0" && v !== "false";
  return $(checkbox).checked;
}

async function agentName() {
  const fromUrl = params.get("agent");
  if (fromUrl) return fromUrl;
  const res = await fetch("/v1/config", { cache: "no-store" });
  return (await res.json()).default_agent;
}

// ---------------------------------------------------------------------------------------------- transcript

// Barge-in: the caller did not hear the rest of this answer (the model forgot it too), so say so.
function markInterrupted(itemId) {
  const li = itemId && bubbles.get(`assistant:${itemId}`);
  if (li) li.classList.add("interrupted");
  const entry = stats.transcript.find((e) => e.role === "assistant" && e.item_id === itemId);
  if (entry) entry.interrupted = true;
}

const bubbles = new Map(); // `${role}:${item_id}` -> <li>

function showTranscript(role, itemId, text, final, typed = false) {
  const key = `${role}:${itemId || Math.random()}`;
  let li = bubbles.get(key);
  if (!li) {
    li = document.createElement("li");
    li.className = role;
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = role === "user" ? (typed ? "You (typed)" : "You") : "Agent";
    li.append(who, document.createTextNode(""));
    bubbles.set(key, li);
    $("transcript").append(li);
    stats.transcript.push({ role, item_id: itemId, text: "", final: false });
  }
  const entry = stats.transcript.find((e) => e.role === role && e.item_id === itemId) || stats.transcript.at(-1);
  entry.text = final ? text : entry.text + text;
  entry.final = final;
  li.lastChild.textContent = entry.text;
  li.classList.toggle("partial", !final);
  $("transcript").scrollTop = $("transcript").scrollHeight;
}

// ----------------------------------------------------------------------------------------------------- call

async function startCall() {
  say("");
  const agent = await agentName();
  $("agent").textContent = agent;
  const token = params.get("token") || "";
  const inFormat = params.get("in") || "pcm16_16k";
  const outFormat = params.get("out") || "pcm16_24k";
  const inRate = PCM_RATES[inFormat];
  const outRate = PCM_RATES[outFormat];
  if (!inRate || !outRate) {
    say(`Unsupported audio format in the page URL (in=${inFormat}, out=${outFormat}).`, true);
    return;
  }
  setState("connecting", "Connecting…");
  setLive(true);
  $("call").disabled = true;
  const c = {
    agent, token, inFormat, outFormat, inRate, outRate,
    ws: null, mic: null, captureCtx: null, playCtx: null, capture: null, player: null,
    started: false, ended: false, item: "", turnEndAt: null, firstAudioSeen: true, lastMarked: "",
  };
  call = c;
  try {
    c.mic = await navigator.mediaDevices.getUserMedia({
      audio: {
        channelCount: 1,
        echoCancellation: flag("aec", "aec"),
        noiseSuppression: flag("ns", "ns"),
        autoGainControl: flag("agc", "agc"),
      },
    });
  } catch (err) {
    fail(`The microphone is not available (${err.name}). Allow microphone access and try again.`);
    return;
  }
  try {
    await setupAudio(c);
  } catch (err) {
    fail(`Audio could not start in this browser (${err.message}).`);
    return;
  }
  openSocket(c);
}

async function newContext(rate) {
  try {
    return new AudioContext({ sampleRate: rate, latencyHint: "interactive" });
  } catch {
    return new AudioContext({ latencyHint: "interactive" }); // the worklets resample
  }
}

async function setupAudio(c) {
  c.captureCtx = await newContext(c.inRate);
  await c.captureCtx.audioWorklet.addModule("/static/capture-worklet.js");
  const source = c.captureCtx.createMediaStreamSource(c.mic);
  c.capture = new AudioWorkletNode(c.captureCtx, "rtvoice-capture", {
    numberOfInputs: 1,
    numberOfOutputs: 1,
    channelCount: 1,
    processorOptions: { targetRate: c.inRate, frameSamples: Math.round(c.inRate / 50) },
  });
  const mute = c.captureCtx.createGain();
  mute.gain.value = 0;
  source.connect(c.capture).connect(mute).connect(c.captureCtx.destination);
  c.capture.port.onmessage = (e) => onMicFrame(c, e.data);

  c.playCtx = await newContext(c.outRate);
  await c.playCtx.audioWorklet.addModule("/static/playback-worklet.js");
  c.player = new AudioWorkletNode(c.playCtx, "rtvoice-playback", {
    numberOfInputs: 0,
    numberOfOutputs: 1,
    outputChannelCount: [1],
  });
  c.player.connect(c.playCtx.destination);
  c.player.port.onmessage = (e) => onPlayerStats(c, e.data);
  c.playRatio = c.playCtx.sampleRate / c.outRate;
  stats.outputRate = c.playCtx.sampleRate;
  await Promise.all([c.captureCtx.resume(), c.playCtx.resume()]);
}

function openSocket(c) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const query = c.token ? `?token=${encodeURIComponent(c.token)}` : "";
  const ws = new WebSocket(`${scheme}//${location.host}/v1/agents/${c.agent}${query}`);
  ws.binaryType = "arraybuffer";
  c.ws = ws;
  ws.onopen = () => {
    send(c, {
      type: "session.start",
      input_format: c.inFormat,
      output_format: c.outFormat,
      metadata: { client: "web" },
    });
  };
  ws.onmessage = (e) => {
    if (typeof e.data === "string") onEvent(c, JSON.parse(e.data));
    else onAgentAudio(c, e.data);
  };
  ws.onclose = (e) => onClose(c, e);
}

function send(c, event) {
  if (c.ws && c.ws.readyState === WebSocket.OPEN) c.ws.send(JSON.stringify(event));
}

function onMicFrame(c, buffer) {
  const pcm = new Int16Array(buffer);
  let sum = 0;
  for (let i = 0; i < pcm.length; i += 4) sum += pcm[i] * pcm[i];
  const rms = Math.sqrt(sum / (pcm.length / 4)) / 32768;
  $("level").style.width = `${Math.min(100, Math.round(rms * 400))}%`;
  if (!c.started || c.ended || c.ws.readyState !== WebSocket.OPEN) return;
  c.ws.send(buffer);
  stats.framesSent++;
}

function onAgentAudio(c, buffer) {
  stats.bytesReceived += buffer.byteLength;
  if (!c.firstAudioSeen && c.turnEndAt !== null) {
    c.firstAudioSeen = true;
    const ms = Math.round(performance.now() - c.turnEndAt);
    stats.latenciesMs.push(ms);
    $("latency").textContent = `Latency: ${ms} ms from the end of your turn to the agent's first audio` +
      (stats.serverLatenciesMs.length ? ` (server: ${stats.serverLatenciesMs.at(-1)} ms)` : "");
  }
  const pcm = new Int16Array(buffer);
  let samples = new Float32Array(pcm.length);
  for (let i = 0; i < pcm.length; i++) samples[i] = pcm[i] / 32768;
  if (c.playRatio !== 1) samples = resampleLinear(samples, c.playRatio);
  c.player.port.postMessage({ type: "audio", item: c.item, samples }, [samples.buffer]);
}

// Only used when the browser refused an AudioContext at the session's output rate.
function resampleLinear(x, ratio) {
  const n = Math.floor(x.length * ratio);
  const y = new Float32Array(n);
  for (let j = 0; j < n; j++) {
    const t = j / ratio;
    const i = Math.floor(t);
    const b = i + 1 < x.length ? x[i + 1] : x[i];
    y[j] = x[i] + (t - i) * (b - x[i]);
  }
  return y;
}

// The playback worklet reports every ~100 ms: that cadence drives playback.mark.
function onPlayerStats(c, s) {
  stats.playedSamples = s.played;
  stats.bufferedSamples = s.buffered;
  stats.underruns = s.underruns;
  $("them").classList.toggle("active", s.playing || s.buffered > 0);
  if (!s.item || c.ended) return;
  const playedMs = Math.round((s.itemPlayed * 1000) / c.playCtx.sampleRate);
  stats.itemPlayedMs[s.item] = Math.max(stats.itemPlayedMs[s.item] || 0, playedMs);
  if (s.cleared) stats.lastClear = { item_id: s.item, played_ms: playedMs };
  const key = `${s.item}:${playedMs}`;
  if (key !== c.lastMarked) {
    c.lastMarked = key;
    send(c, { type: "playback.mark", item_id: s.item, played_ms: playedMs });
    stats.marksSent++;
    stats.lastMark = { item_id: s.item, played_ms: playedMs };
  }
}

function turnEnded(c) {
  c.turnEndAt = performance.now();
  c.firstAudioSeen = false;
}

function onEvent(c, ev) {
  switch (ev.type) {
    case "session.started":
      c.started = true;
      stats.sessionId = ev.session_id;
      setState("live", "Live");
      say(`Connected to ${c.agent} (${ev.provider}, voice ${ev.voice || "default"}). Start talking.`);
      break;
    case "audio.started":
      c.item = ev.item_id;
      if (ev.latency_ms !== null && ev.latency_ms !== undefined) stats.serverLatenciesMs.push(ev.latency_ms);
      break;
    case "audio.clear":
      stats.clears++;
      c.player.port.postMessage({ type: "clear" });
      markInterrupted(ev.item_id || c.item);
      break;
    case "transcript":
      if (ev.role === "user" && ev.final && c.pendingTyped === ev.text) {
        c.pendingTyped = null; // already shown when it was typed
        break;
      }
      showTranscript(ev.role, ev.item_id, ev.text, ev.final);
      break;
    case "speech.started":
      $("you").classList.add("active");
      break;
    case "speech.stopped":
      $("you").classList.remove("active");
      turnEnded(c);
      break;
    case "response.started":
      break;
    case "response.done":
      c.player.port.postMessage({ type: "done" });
      break;
    case "error":
      stats.errors.push(ev);
      say(ERROR_WORDS[ev.code] || ev.message, true);
      if (ev.fatal) setState("error", "Error");
      break;
    case "session.ended":
      c.ended = true;
      stats.endedReason = ev.reason;
      if (stats.state !== "error") say(ENDED_WORDS[ev.reason] || `Call ended (${ev.reason}).`, ev.reason !== "caller_hangup");
      break;
    default:
      break; // tool.call, tool.result, tool.cancelled: nothing to show
  }
}

async function onClose(c, e) {
  const wasStarted = c.started;
  c.ended = true;
  teardown(c);
  if (!wasStarted && !stats.endedReason) {
    // The upgrade was refused or the server is unreachable: ask the server why, in plain words.
    let why = "The server could not be reached.";
    try {
      const q = new URLSearchParams({ agent: c.agent, token: c.token });
      const res = await fetch(`/v1/token/check?${q}`, { cache: "no-store" });
      const body = await res.json();
      why = body.ok ? `The connection closed (code ${e.code}).` : body.message;
    } catch {
      // keep the generic message
    }
    setState("error", "Not connected");
    say(why, true);
    return;
  }
  if (stats.state !== "error") setState("idle", "Not connected");
  if (!stats.endedReason) say(`The connection was lost (code ${e.code}). Call again to continue.`, true);
}

function teardown(c) {
  if (c.capture) c.capture.port.postMessage("stop");
  if (c.mic) for (const t of c.mic.getTracks()) t.stop();
  for (const ctx of [c.captureCtx, c.playCtx]) if (ctx && ctx.state !== "closed") ctx.close();
  $("you").classList.remove("active");
  $("them").classList.remove("active");
  setLive(false);
  call = null;
}

function fail(text) {
  setState("error", "Error");
  say(text, true);
  if (call) teardown(call);
}

function hangUp() {
  if (!call) return;
  send(call, { type: "session.end" });
  setTimeout(() => call && call.ws && call.ws.close(), 3000);
}

// ------------------------------------------------------------------------------------------------- wiring

$("call").addEventListener("click", () => {
  stats.endedReason = null;
  startCall().catch((err) => fail(`The call failed to start: ${err.message}`));
});
$("hangup").addEventListener("click", hangUp);
$("interrupt").addEventListener("click", () => {
  if (!call) return;
  send(call, { type: "interrupt" });
});
$("text-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("text").value.trim();
  if (!call || !text) return;
  send(call, { type: "text", text });
  showTranscript("user", `typed-${Date.now()}`, text, true, true);
  call.pendingTyped = text;
  turnEnded(call);
  $("text").value = "";
});
$("steer-form").addEventListener("submit", (e) => {
  e.preventDefault();
  if (!call) return;
  const event = { type: "steer" };
  const voice = $("voice").value.trim();
  const instructions = $("instructions").value.trim();
  if (voice) event.voice = voice;
  if (instructions) event.instructions = instructions;
  if (!voice && !instructions) {
    say("Enter a voice or instructions first.");
    return;
  }
  send(call, event);
  say("Steering sent; it applies after the current answer.");
});
for (const [p, id] of [["aec", "aec"], ["ns", "ns"], ["agc", "agc"]]) flag(p, id);
agentName().then((a) => ($("agent").textContent = a)).catch(() => {});
if (!params.get("token")) say("No token in the page URL (?token=…); the server may refuse the call.");
if (params.get("autostart") === "1") $("call").click();
