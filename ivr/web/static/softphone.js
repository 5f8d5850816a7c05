// The softphone: a caller on /v1/call, or an agent on /v1/agent, speaking
// the WebSocket protocol of docs/protocol.md. Audio is 20 ms frames of
// pcm_s16le at 8000 or 16000 Hz both ways (audio.js, worklet.js).

import { AudioEngine } from "./audio.js";
import { currentUser, setToken, signIn, signOut, token } from "./api.js";
import { $, el, renderWho, say } from "./ui.js";

const E164 = /^\+[1-9]\d{1,14}$/;
const DIGITS = new Set("0123456789*#".split(""));
const audio = new AudioEngine();

const wsUrl = (path) => `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${path}`;

const problemBox = $("#problem");
const statusLine = $("#status");
const problem = (text) => say(problemBox, text);
const status = (text) => say(statusLine, text);

const CALLER_ENDS = {
  caller: "you hung up",
  agent: "the agent hung up",
  flow: "the call flow ended it",
  no_answer: "nobody answered",
  timeout: "no choice was made in the menu",
  shutdown: "the server is shutting down",
  error: "of an error",
};
const AGENT_ENDS = { ...CALLER_ENDS, caller: "the caller hung up", agent: "you hung up" };

// ---------------------------------------------------------------- the call panel

/** The call controls, indicators, meters and details; one call at a time. */
class CallView {
  constructor() {
    this.panel = $("#call-panel");
    this.rec = $("#rec-indicator");
    this.ai = $("#ai-indicator");
    this.news = $("#indicator-news");
    this.keys = [...document.querySelectorAll(".keypad button")];
    this.hangupBtn = $("#hangup");
    this.muteBtn = $("#mute");
    this.micMeter = $("#mic-level");
    this.speakerMeter = $("#speaker-level");
    this.logList = $("#call-log");
    this.controller = null; // the call these controls act on
    this.muted = false;
    for (const key of this.keys) key.addEventListener("click", () => this.press(key.dataset.digit));
    this.hangupBtn.addEventListener("click", () => this.controller?.hangup());
    this.muteBtn.addEventListener("click", () => this.setMuted(!this.muted));
    document.addEventListener("keydown", (e) => {
      if (!this.controller?.live || e.altKey || e.ctrlKey || e.metaKey) return;
      if (e.target.closest?.("input, textarea, select")) return;
      if (!DIGITS.has(e.key)) return;
      e.preventDefault();
      this.press(e.key);
    });
    this.enable(false);
  }

  begin(controller, title) {
    this.controller = controller;
    this.t0 = performance.now();
    this.panel.hidden = false;
    $("#call-title").textContent = title;
    this.logList.replaceChildren();
    this.setIndicator("rec", "off", true);
    this.setIndicator("ai", "off", true);
    this.setMuted(false);
    this.stats({ call: "dialling", codec: "", sent: 0, received: 0, jitter: "", server: "" });
    this.enable(true);
    // On a phone the call controls are below the dialling form: bring them up.
    const box = this.panel.getBoundingClientRect();
    if (box.top > window.innerHeight * 0.6) {
      const smooth = !window.matchMedia("(prefers-reduced-motion: reduce)").matches;
      this.panel.scrollIntoView({ block: "start", behavior: smooth ? "smooth" : "auto" });
    }
  }

  end() {
    this.enable(false);
    this.micMeter.value = 0;
    this.speakerMeter.value = 0;
    this.controller = null;
  }

  enable(on) {
    for (const key of this.keys) key.disabled = !on;
    this.hangupBtn.disabled = !on;
    this.muteBtn.disabled = !on;
  }

  press(digit) {
    if (!this.controller?.live) return;
    audio.tone(digit);
    this.controller.dtmf(digit);
    this.log(`pressed ${digit}`);
  }

  setMuted(on) {
    this.muted = on;
    this.muteBtn.setAttribute("aria-checked", String(on));
    this.muteBtn.querySelector(".state").textContent = on ? "on" : "off";
  }

  /** kind: "rec" or "ai"; state: on, paused, off or unknown. */
  setIndicator(kind, state, quiet = false) {
    const node = kind === "rec" ? this.rec : this.ai;
    const label = `${kind === "rec" ? "Recording" : "AI transcription"}: ${state}`;
    if (node.dataset.state === state && node.getAttribute("aria-label") === label) return;
    node.dataset.state = state;
    node.setAttribute("aria-label", label);
    node.querySelector(".label").textContent = label;
    if (!quiet) {
      this.news.textContent = label;
      this.log(label);
    }
  }

  stats(values) {
    const ids = { call: "#d-call", codec: "#d-codec", sent: "#d-sent", received: "#d-received", jitter: "#d-jitter", server: "#d-server" };
    for (const [k, v] of Object.entries(values)) if (ids[k]) $(ids[k]).textContent = String(v);
  }

  log(text) {
    const s = ((performance.now() - (this.t0 ?? performance.now())) / 1000).toFixed(2);
    this.logList.append(el("li", {}, el("span", { class: "mono", text: `${s} s ` }), text));
    while (this.logList.children.length > 200) this.logList.firstChild.remove();
    this.logList.parentElement.scrollTop = this.logList.parentElement.scrollHeight;
  }
}

const view = new CallView();

// ---------------------------------------------------------------- media of one call

/** Audio both ways for an answered call: frames to `ws`, frames from it to the speaker. */
class Media {
  constructor(stream, rate, ws) {
    this.ws = ws;
    this.sent = 0;
    this.received = 0;
    this.silence = new ArrayBuffer((rate / 50) * 2);
    let meterTick = 0;
    this.link = audio.startCall(stream, rate, {
      onFrame: (pcm, peak) => {
        if (this.ws.readyState !== WebSocket.OPEN) return;
        this.ws.send(view.muted ? this.silence : pcm);
        this.sent++;
        if (++meterTick % 5 === 0) {
          view.micMeter.value = view.muted ? 0 : peak;
          view.stats({ sent: this.sent, received: this.received });
        }
      },
      onStats: (s) => {
        view.speakerMeter.value = s.peak;
        view.stats({
          jitter: `${s.delayMs} ms queued, ${s.underruns} underrun(s), ${s.dropped + s.trimmed} dropped`,
        });
      },
    });
  }

  push(frame) {
    this.received++;
    this.link.push(frame);
  }

  stop() {
    this.link.stop();
    view.stats({ sent: this.sent, received: this.received });
  }
}

function serverStats(stats) {
  if (!stats) return "";
  return `sent ${stats.frames_sent}, received ${stats.frames_received}, late ${stats.frames_late}, dropped ${stats.frames_dropped}`;
}

// ---------------------------------------------------------------- caller mode

class CallerCall {
  constructor(to, from, rate, stream) {
    this.to = to;
    this.rate = rate;
    this.stream = stream;
    this.media = null;
    this.live = true; // until the call has ended
    this.ended = false;
    this.reason = null;
    this.failure = null;
    this.ws = new WebSocket(wsUrl("/v1/call"));
    this.ws.binaryType = "arraybuffer";
    this.ws.onopen = () => {
      this.send({ type: "dial", to, from, codec: "pcm_s16le", rate });
      status(`Calling ${to}…`);
    };
    this.ws.onmessage = (e) => this.receive(e.data);
    this.ws.onclose = (e) => this.closed(e.code);
    view.begin(this, `Call to ${to}`);
    view.log(`dialling ${to} from ${from} at ${rate} Hz`);
  }

  send(message) {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  receive(data) {
    if (data instanceof ArrayBuffer) {
      this.media?.push(data);
      return;
    }
    const m = JSON.parse(data);
    switch (m.type) {
      case "answered":
        this.media = new Media(this.stream, m.rate, this.ws);
        view.stats({ call: m.call_id, codec: `${m.codec} at ${m.rate} Hz, ${m.ptime} ms frames` });
        status(`Call answered by ${this.to}. Listen to the menu.`);
        view.log(`answered: ${m.call_id}`);
        break;
      case "prompt":
        view.log(`prompt ${m.event} ${m.prompt} (${m.node})${m.interrupted ? ", interrupted" : ""}`);
        break;
      case "recording":
        view.setIndicator("rec", m.state);
        break;
      case "transcription":
        view.setIndicator("ai", m.state);
        break;
      case "ringing":
        status(`Ringing: waiting for an agent on line ${m.line}.`);
        view.log(`ringing on line ${m.line}`);
        break;
      case "connected":
        status(`Connected to ${m.agent}.`);
        view.log(`connected to ${m.agent} on line ${m.line}`);
        break;
      case "error":
        view.log(`error ${m.code}: ${m.message}`);
        if (m.code === "unknown_number") {
          this.failure = `${this.to} is not a number of this server. Check the number; the demo numbers are listed under the Number field.`;
        } else if (m.code === "busy") {
          this.failure = "The server is at its call limit. Try again in a moment.";
        } else if (m.code === "too_many_errors") {
          this.failure = "The server ended the call after too many errors.";
        }
        if (this.failure) problem(this.failure);
        break;
      case "hangup":
        this.finish(m.reason, m.stats);
        break;
      default:
        view.log(`message ${m.type}`);
    }
  }

  finish(reason, stats) {
    this.ended = true;
    this.reason = reason;
    this.stop();
    const why = this.failure && reason === "error" ? "the number could not be called" : CALLER_ENDS[reason] ?? reason;
    status(`Call ended: ${why}.`);
    view.log(`hangup: ${reason}${stats?.recording_id ? `, recording ${stats.recording_id}` : ""}`);
    view.stats({ server: serverStats(stats) });
  }

  closed(code) {
    if (!this.ended) {
      this.stop();
      this.ended = true;
      problem(`Lost the connection to the server (code ${code}). The call has ended; call again when the server is back.`);
      status("Call ended: the connection was lost.");
      view.log(`connection closed: ${code}`);
    }
    view.log(`socket closed (${code})`);
    callerMode.callEnded();
  }

  stop() {
    if (!this.live) return;
    this.live = false;
    if (this.media) this.media.stop();
    else for (const t of this.stream.getTracks()) t.stop();
    view.end();
  }

  dtmf(digit) {
    this.send({ type: "dtmf", digits: digit });
  }

  hangup() {
    if (this.ws.readyState === WebSocket.OPEN) {
      this.send({ type: "hangup" });
      status("Hanging up…");
    } else {
      this.ws.close();
    }
  }
}

const callerMode = {
  form: $("#dial-form"),
  call: null,

  init() {
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.dial();
    });
    for (const b of document.querySelectorAll(".demo-list button")) {
      b.addEventListener("click", () => {
        $("#number").value = b.dataset.number;
        $("#number").focus();
      });
    }
  },

  // Runs in the Call click (or Enter) handler: the AudioContext is created or
  // resumed before the first await.
  async dial() {
    if (this.call) return;
    const to = $("#number").value.trim();
    const from = $("#from").value.trim();
    const rate = Number($("#caller-rate").value);
    problem("");
    if (!E164.test(to)) {
      problem("Enter the number in E.164 form: a + and 2 to 15 digits, like +15550100.");
      $("#number").focus();
      return;
    }
    if (!E164.test(from)) {
      problem("Enter your caller ID in E.164 form, like +15557654321.");
      $("#from").focus();
      return;
    }
    const unlocked = audio.unlock();
    setBusy(true);
    status("Opening the microphone…");
    let stream;
    try {
      await unlocked;
      stream = await audio.openMicrophone();
    } catch (err) {
      setBusy(false);
      problem(err.kind ? err.message : `The audio could not start: ${err.message}`);
      status("No call: the microphone is not available.");
      return;
    }
    this.call = new CallerCall(to, from, rate, stream);
  },

  callEnded() {
    this.call = null;
    setBusy(false);
  },
};

function setBusy(inCall) {
  $("#call").disabled = inCall;
  for (const r of document.querySelectorAll('input[name="mode"]')) r.disabled = inCall;
}

// ---------------------------------------------------------------- agent mode

const OFFER_TIMEOUT_MS = 15000; // limits.agent_offer_timeout_s by default

class AgentDesk {
  constructor() {
    this.form = $("#signin-form");
    this.session = $("#agent-session");
    this.readyBtn = $("#ready");
    this.offerBox = $("#offer");
    this.ws = null;
    this.user = null;
    this.ready = false;
    this.offer = null;
    this.call = null; // {id, media, recording}
    this.live = false;
    this.leaving = false;
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.signIn();
    });
    this.readyBtn.addEventListener("click", () => this.toggleReady());
    $("#answer").addEventListener("click", () => this.answer());
    $("#reject").addEventListener("click", () => this.reject());
    $("#agent-reconnect").addEventListener("click", () => this.connect());
  }

  async enter() {
    if (this.ws) return;
    this.user = await currentUser();
    if (this.user && this.user.role !== "owner") this.connect();
    else this.showSignIn();
  }

  showSignIn() {
    this.form.hidden = false;
    this.session.hidden = true;
    status("Sign in to take calls.");
  }

  async signIn() {
    problem("");
    const email = $("#agent-email").value.trim();
    const password = $("#agent-password").value;
    if (!email || !password) {
      problem("Enter your e-mail address and password.");
      return;
    }
    status("Signing in…");
    try {
      this.user = await signIn(email, password);
    } catch (err) {
      problem(err.message);
      status("Not signed in.");
      $("#agent-password").focus();
      return;
    }
    $("#agent-password").value = "";
    refreshWho(this.user);
    if (this.user.role === "owner") {
      problem("Owners have no access to calls, so an Owner cannot take calls.");
      status("Not taking calls.");
      return;
    }
    this.connect();
  }

  connect() {
    problem("");
    $("#agent-reconnect").hidden = true;
    this.leaving = false;
    this.rate = Number($("#agent-rate").value);
    const ws = new WebSocket(wsUrl("/v1/agent"));
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    this.loginError = null;
    ws.onopen = () => ws.send(JSON.stringify({ type: "login", token: token(), codec: "pcm_s16le", rate: this.rate }));
    ws.onmessage = (e) => this.receive(e.data);
    ws.onclose = (e) => this.closed(ws, e.code);
    status("Connecting…");
  }

  send(message) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  receive(data) {
    if (data instanceof ArrayBuffer) {
      this.call?.media?.push(data);
      return;
    }
    const m = JSON.parse(data);
    switch (m.type) {
      case "logged_in":
        this.form.hidden = true;
        this.session.hidden = false;
        $("#agent-who").textContent = `Signed in as ${m.agent} for team(s): ${m.teams.join(", ") || "none"}.`;
        this.setReady(false);
        status("Signed in. Switch Ready on to take calls.");
        break;
      case "offer":
        this.showOffer(m);
        break;
      case "answered":
        this.startCall(m);
        break;
      case "recording":
        if (this.call) view.setIndicator("rec", m.state);
        break;
      case "transcription":
        if (this.call) view.setIndicator("ai", m.state);
        break;
      case "hangup":
        this.hungUp(m);
        break;
      case "error":
        if (m.code === "unauthorized") {
          this.loginError = m.message;
        } else if (m.code === "bad_field" && /offered/.test(m.message)) {
          this.hideOffer();
          problem("That call is no longer offered to you: it went to another agent or the caller hung up.");
          this.endCall();
        } else if (this.call) {
          view.log(`error ${m.code}: ${m.message}`);
        }
        break;
      default:
        break;
    }
  }

  closed(ws, code) {
    if (ws !== this.ws) return;
    this.ws = null;
    this.hideOffer();
    this.endCall();
    this.setReady(false);
    if (this.leaving) return;
    if (this.loginError) {
      setToken(null);
      refreshWho(null);
      this.showSignIn();
      problem(`Signed out: ${this.loginError}. Sign in again.`);
      return;
    }
    problem(`Lost the connection to the server (code ${code}). You are not taking calls; reconnect when the server is back.`);
    status("Not connected.");
    $("#agent-reconnect").hidden = false;
  }

  setReady(on) {
    this.ready = on;
    this.readyBtn.setAttribute("aria-checked", String(on));
    this.readyBtn.querySelector(".state").textContent = on ? "on" : "off";
  }

  // A click handler: unlock the audio first, before any await.
  async toggleReady() {
    const unlocked = audio.unlock();
    if (this.ready) {
      this.send({ type: "not_ready" });
      this.setReady(false);
      status("Not ready: no calls are offered to you.");
      return;
    }
    problem("");
    try {
      await unlocked;
      // Ask for the microphone now, so a refusal shows before a call is offered.
      const stream = await audio.openMicrophone();
      for (const t of stream.getTracks()) t.stop();
    } catch (err) {
      problem(err.kind ? err.message : `The audio could not start: ${err.message}`);
      status("Not ready: the microphone is not available.");
      return;
    }
    this.send({ type: "ready" });
    this.setReady(true);
    status("Ready: waiting for a call.");
  }

  showOffer(m) {
    this.offer = m;
    this.offerBox.hidden = false;
    $("#offer-from").textContent = `From ${m.from}, line ${m.line}.`;
    $("#offer-recording").textContent = m.recording ? "This call will be recorded." : "This call will not be recorded.";
    status(`Incoming call from ${m.from}. ${m.recording ? "It will be recorded." : "It will not be recorded."}`);
    this.stopRing = audio.ring();
    clearTimeout(this.offerTimer);
    this.offerTimer = setTimeout(() => {
      if (this.offer?.call_id === m.call_id && !this.call) {
        this.hideOffer();
        status("The call was not answered in time and went to another agent.");
      }
    }, OFFER_TIMEOUT_MS);
  }

  hideOffer() {
    clearTimeout(this.offerTimer);
    this.stopRing?.();
    this.stopRing = null;
    this.offerBox.hidden = true;
    this.offer = null;
  }

  async answer() {
    const offer = this.offer;
    if (!offer) return;
    const unlocked = audio.unlock();
    this.hideOffer();
    let stream;
    try {
      await unlocked;
      stream = await audio.openMicrophone();
    } catch (err) {
      this.send({ type: "reject", call_id: offer.call_id });
      problem(err.kind ? err.message : `The audio could not start: ${err.message}`);
      status("Call rejected: the microphone is not available.");
      return;
    }
    this.call = { id: offer.call_id, stream, media: null, recording: offer.recording, from: offer.from };
    this.live = true;
    setBusy(true);
    view.begin(this, `Call from ${offer.from}`);
    view.setIndicator("rec", offer.recording ? "on" : "off", true);
    view.setIndicator("ai", "unknown", true);
    this.send({ type: "answer", call_id: offer.call_id });
    status(`Answering the call from ${offer.from}…`);
  }

  reject() {
    if (!this.offer) return;
    this.send({ type: "reject", call_id: this.offer.call_id });
    this.hideOffer();
    status("Call rejected. Still ready.");
  }

  startCall(m) {
    if (!this.call) return;
    this.call.media = new Media(this.call.stream, m.rate, this.ws);
    view.stats({ call: m.call_id, codec: `${m.codec} at ${m.rate} Hz, ${m.ptime} ms frames` });
    status(`Connected to ${this.call.from}.`);
    view.log(`answered ${m.call_id}`);
  }

  hungUp(m) {
    if (this.offer && (!m.call_id || m.call_id === this.offer.call_id)) {
      this.hideOffer();
      status("The caller hung up before you answered.");
    }
    if (!this.call) return;
    view.stats({ server: serverStats(m.stats) });
    view.log(`hangup: ${m.reason}`);
    this.endCall();
    status(`Call ended: ${AGENT_ENDS[m.reason] ?? m.reason}.${this.ready ? " Still ready." : ""}`);
  }

  endCall() {
    if (!this.call) return;
    if (this.call.media) this.call.media.stop();
    else for (const t of this.call.stream.getTracks()) t.stop();
    this.call = null;
    this.live = false;
    setBusy(false);
    view.end();
  }

  dtmf(digit) {
    this.send({ type: "dtmf", digits: digit });
  }

  hangup() {
    this.send({ type: "hangup" });
    status("Hanging up…");
  }

  leave() {
    this.leaving = true;
    this.hideOffer();
    this.endCall();
    this.ws?.close(1000);
    this.ws = null;
    this.setReady(false);
  }
}

const agentDesk = new AgentDesk();

// ---------------------------------------------------------------- the page

function refreshWho(user) {
  renderWho($("#who"), user, async () => {
    agentDesk.leave();
    await signOut();
    refreshWho(null);
    if (currentMode() === "agent") agentDesk.showSignIn();
  });
}

function currentMode() {
  return document.querySelector('input[name="mode"]:checked').value;
}

function applyMode() {
  const agent = currentMode() === "agent";
  $("#caller-panel").hidden = agent;
  $("#agent-panel").hidden = !agent;
  problem("");
  if (agent) agentDesk.enter();
  else {
    agentDesk.leave();
    status("Ready to call.");
  }
}

callerMode.init();
for (const r of document.querySelectorAll('input[name="mode"]')) r.addEventListener("change", applyMode);
if (new URLSearchParams(location.search).get("mode") === "agent") {
  document.querySelector('input[name="mode"][value="agent"]').checked = true;
}
applyMode();
currentUser().then(refreshWho);
window.addEventListener("beforeunload", () => agentDesk.leave());
