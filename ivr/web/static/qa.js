// The QA console: the recordings this user may see, and one recording's
// page (player, waveform, consent evidence, decision, transcript, QA notes,
// score, tags, deletion). Every read and change goes through the API with
// the user's token, so the API's access rules decide; the page only hides
// what the API would refuse anyway.

import { bindSignInForm, ApiError, ROLE_NAMES, api, authHeaders, currentUser, signOut, token } from "./api.js";
import { $, confirmDialog, el, fmtBytes, fmtClock, fmtDuration, fmtTime, labelCells, renderWho, say } from "./ui.js";
import { computePeaks, draw } from "./waveform.js";

// Rows per page: 20, or ?per_page=N in the address (1 to 500).
const PAGE_SIZE = (() => {
  const n = Number(new URLSearchParams(location.search).get("per_page"));
  return Number.isInteger(n) && n >= 1 && n <= 500 ? n : 20;
})();
const problem = (text) => say($("#problem"), text);
const notice = (text) => say($("#notice"), text);

let user = null;
const people = new Map(); // user id -> name, for the notes' authors
const listState = { cursors: [null], filters: {} };
let current = null; // the open recording: {rec, peaks, abort, blobUrl}

// ---------------------------------------------------------------- sign-in

function showOnly(id) {
  for (const s of ["signin", "owner", "list", "detail"]) $(`#${s}`).hidden = s !== id;
}

async function start() {
  user = await currentUser();
  refreshWho();
  if (!user) {
    showOnly("signin");
    return;
  }
  if (user.role === "owner") {
    showOnly("owner");
    return;
  }
  streamingReady ??= setUpAudioStreaming();
  await setUpFilters();
  route();
}

function refreshWho() {
  renderWho($("#who"), user, async () => {
    leaveDetail();
    await signOut();
    user = null;
    refreshWho();
    problem("");
    notice("You have signed out.");
    showOnly("signin");
  });
}

bindSignInForm($("#signin-form"), {
  problem,
  notice,
  onSignedIn: async (signedIn) => {
    user = signedIn;
    await start();
    $("#main").focus();
  },
});

window.addEventListener("ivr:signed-out", () => {
  user = null;
  refreshWho();
  leaveDetail();
  problem("Your session has ended. Sign in again.");
  showOnly("signin");
});

// ---------------------------------------------------------------- the list

async function setUpFilters() {
  const own = user.role === "agent";
  $("#agent-filter").hidden = own;
  $("#list-scope").textContent = own
    ? "As an Agent you see the recordings of calls you answered, and no others."
    : `As ${ROLE_NAMES[user.role] === "Admin" ? "an" : "a"} ${ROLE_NAMES[user.role]} you see every recording.`;
  if (own) return;
  const select = $("#f-agent");
  select.replaceChildren(el("option", { value: "", text: "Any agent" }));
  try {
    const users = await api("/v1/users");
    for (const u of users.items) people.set(u.id, u.name);
    for (const u of users.items.filter((u) => u.role !== "owner")) {
      select.append(el("option", { value: u.id, text: `${u.name} (${u.email})` }));
    }
  } catch {
    // The list of people is a convenience; without it the filter offers "Any agent" only.
  }
}

function readFilters() {
  const f = {};
  const agent = $("#f-agent").value;
  const contact = $("#f-contact").value.trim();
  const since = $("#f-since").value;
  const until = $("#f-until").value;
  if (agent && user.role !== "agent") f.agent_id = agent;
  if (contact) f.contact = contact;
  if (since) f.since = since;
  if (until) {
    // "To date" includes that day: the API's `until` is exclusive.
    const d = new Date(`${until}T00:00:00Z`);
    d.setUTCDate(d.getUTCDate() + 1);
    f.until = d.toISOString().slice(0, 10);
  }
  return f;
}

$("#filters").addEventListener("submit", (e) => {
  e.preventDefault();
  const contact = $("#f-contact").value.trim();
  if (contact && !/^\+[1-9]\d{1,14}$/.test(contact)) {
    problem("Enter the caller's number in E.164 form, like +15557654321.");
    $("#f-contact").focus();
    return;
  }
  problem("");
  listState.filters = readFilters();
  listState.cursors = [null];
  loadList();
});

$("#clear-filters").addEventListener("click", () => {
  $("#filters").reset();
  listState.filters = {};
  listState.cursors = [null];
  loadList();
});

$("#next-page").addEventListener("click", () => {
  if (listState.next) {
    listState.cursors.push(listState.next);
    loadList();
  }
});

$("#prev-page").addEventListener("click", () => {
  if (listState.cursors.length > 1) {
    listState.cursors.pop();
    loadList();
  }
});

async function loadList() {
  const tbody = $("#recordings tbody");
  const cursor = listState.cursors[listState.cursors.length - 1];
  $("#list").setAttribute("aria-busy", "true");
  let data;
  try {
    data = await api("/v1/recordings", { query: { ...listState.filters, limit: PAGE_SIZE, cursor } });
  } catch (err) {
    $("#list").removeAttribute("aria-busy");
    problem(`The recordings could not be listed: ${err.message}`);
    return;
  }
  $("#list").removeAttribute("aria-busy");
  listState.next = data.next;
  tbody.replaceChildren(
    ...data.items.map((r) =>
      el(
        "tr",
        {},
        el("td", {}, el("a", { href: `#recording=${encodeURIComponent(r.id)}`, text: r.id })),
        el("td", { text: fmtTime(r.started_at) }),
        el("td", { class: "num", text: fmtDuration(r.duration_s) }),
        el("td", { class: "mono", text: r.contact ?? "" }),
        el("td", { class: "mono", text: r.number }),
        el("td", { text: r.agent_name ?? "" }),
        el("td", { class: "num", text: r.score ?? "" }),
        el("td", { text: r.tags.join(", ") }),
      ),
    ),
  );
  labelCells($("#recordings"));
  $("#empty").hidden = data.items.length > 0;
  $("#recordings").hidden = data.items.length === 0;
  const page = listState.cursors.length;
  $("#page-number").textContent = `Page ${page}`;
  $("#prev-page").disabled = page === 1;
  $("#next-page").disabled = !data.next;
}

// ---------------------------------------------------------------- routing

function route() {
  if (!user || user.role === "owner") return;
  const m = /^#recording=(.+)$/.exec(location.hash);
  if (m) {
    openRecording(decodeURIComponent(m[1]));
  } else {
    leaveDetail();
    showOnly("list");
    loadList();
  }
}

window.addEventListener("hashchange", () => {
  problem("");
  route();
});

$("#back").addEventListener("click", (e) => {
  e.preventDefault();
  location.hash = "";
});

// ---------------------------------------------------------------- audio streaming

// The <audio> element cannot send the bearer token, so a service worker
// (qa-sw.js) adds it to the element's Range requests. Where service workers
// are not available, the page fetches the whole file and plays it from a Blob.
// Resolves to true once the worker controls this page (within 3 s), else false.
let streamingReady = null;

async function setUpAudioStreaming() {
  if (!("serviceWorker" in navigator)) return false;
  navigator.serviceWorker.addEventListener("message", (e) => {
    if (e.data?.type === "ivr-token" && e.ports[0]) e.ports[0].postMessage(token());
  });
  navigator.serviceWorker.startMessages();
  const controlled = (async () => {
    await navigator.serviceWorker.register("/static/qa-sw.js", { scope: "/qa" });
    await navigator.serviceWorker.ready;
    if (!navigator.serviceWorker.controller) {
      await new Promise((resolve) => navigator.serviceWorker.addEventListener("controllerchange", resolve, { once: true }));
    }
    return true;
  })();
  const timeout = new Promise((resolve) => setTimeout(() => resolve(false), 3000));
  try {
    return await Promise.race([controlled, timeout]);
  } catch {
    return false;
  }
}

async function attachAudio(rec) {
  const player = $("#player");
  const url = `/v1/recordings/${encodeURIComponent(rec.id)}/audio`;
  const streaming = await streamingReady;
  if (current?.rec !== rec) return;
  if (streaming) {
    player.src = url;
    $("#player-note").textContent = "Streamed from the API with Range requests: you can seek before it has all loaded.";
    return;
  }
  $("#player-note").textContent = "Loading the whole recording (this browser cannot stream it)…";
  const resp = await api(url, { raw: true, signal: current.abort.signal });
  const blob = await resp.blob();
  current.blobUrl = URL.createObjectURL(blob);
  player.src = current.blobUrl;
  $("#player-note").textContent = "Loaded in full from the API.";
}

// ---------------------------------------------------------------- a recording

function leaveDetail() {
  if (!current) return;
  current.abort.abort();
  const player = $("#player");
  player.pause();
  player.removeAttribute("src");
  player.load();
  if (current.blobUrl) URL.revokeObjectURL(current.blobUrl);
  current = null;
}

function fact(dl, term, value, mono = false) {
  dl.append(el("dt", { text: term }), el("dd", { class: mono ? "mono" : null, text: value ?? "" }));
}

async function openRecording(id) {
  leaveDetail();
  showOnly("detail");
  current = { abort: new AbortController(), rec: null, peaks: null };
  const mine = current;
  $("#detail-title").textContent = `Recording ${id}`;
  for (const sel of ["#facts", "#consent", "#trace", "#transcript", "#notes"]) $(sel).replaceChildren();
  $("#reasons").textContent = "";
  let rec;
  try {
    rec = await api(`/v1/recordings/${encodeURIComponent(id)}`);
  } catch (err) {
    if (current !== mine) return;
    problem(err.status === 404 ? `There is no recording ${id} that you may see.` : `The recording could not be read: ${err.message}`);
    $("#facts").replaceChildren();
    return;
  }
  if (current !== mine) return;
  current.rec = rec;
  renderFacts(rec);
  renderQa(rec);
  attachAudio(rec).catch((err) => {
    if (err.name !== "AbortError") problem(`The audio could not be loaded: ${err.message}`);
  });
  loadWaveform(rec, mine);
  loadDecision(rec, mine);
  loadTranscript(rec, mine);
  $("#detail-title").focus();
}

function renderFacts(rec) {
  const dl = $("#facts");
  dl.replaceChildren();
  fact(dl, "Caller", rec.contact, true);
  fact(dl, "Number", rec.number, true);
  fact(dl, "Line", rec.line);
  fact(dl, "Agent", rec.agent_name);
  fact(dl, "Started", fmtTime(rec.started_at));
  fact(dl, "Length", fmtDuration(rec.duration_s));
  fact(dl, "Status", rec.status);
  fact(dl, "Audio", `${rec.format}, ${rec.sample_rate} Hz, ${rec.channels} channels, ${fmtBytes(rec.size_bytes)}`);
  fact(dl, "SHA-256", rec.sha256, true);
  fact(dl, "Call", rec.call_id, true);
  fact(dl, "Score", rec.score ?? "none");
  fact(dl, "Tags", rec.tags.length ? rec.tags.join(", ") : "none");
  fact(
    dl,
    "Pauses",
    rec.pauses.length
      ? rec.pauses.map((p) => `${fmtClock(p.start_s)} to ${fmtClock(p.end_s)} (${p.reason})`).join("; ")
      : "none",
  );
}

async function loadWaveform(rec, mine) {
  const canvas = $("#waveform");
  canvas.setAttribute("aria-label", "Waveform: loading");
  draw(canvas, null);
  try {
    const peaks = await computePeaks(
      `/v1/recordings/${encodeURIComponent(rec.id)}/audio`,
      authHeaders(),
      1200,
      mine.abort.signal,
    );
    if (current !== mine) return;
    mine.peaks = peaks;
    const level = (c) => Math.max(...peaks.max[c].map((v, i) => Math.max(v, -peaks.min[c][i])));
    const words = (c) => (level(c) < 0.001 ? "silent" : `peak ${Math.round(100 * level(c))}% of full scale`);
    canvas.setAttribute(
      "aria-label",
      `Waveform of ${fmtDuration(peaks.duration)}: caller channel ${words(0)}, agent channel ${peaks.channels > 1 ? words(1) : "absent"}.`,
    );
    redraw();
  } catch (err) {
    if (err.name === "AbortError") return;
    canvas.setAttribute("aria-label", "Waveform: not available");
    $("#player-note").textContent += ` The waveform could not be drawn: ${err.message}`;
  }
}

function redraw() {
  if (!current?.peaks) return;
  draw($("#waveform"), current.peaks, current.rec.pauses, $("#player").currentTime);
}

$("#waveform").addEventListener("click", (e) => {
  if (!current?.peaks) return;
  const box = e.currentTarget.getBoundingClientRect();
  const t = ((e.clientX - box.left) / box.width) * current.peaks.duration;
  seek(t, true);
});

function seek(t, play = false) {
  const player = $("#player");
  player.currentTime = Math.max(0, t);
  if (play) player.play().catch(() => {});
  redraw();
}

let animating = false;
function animate() {
  redraw();
  if (!$("#player").paused) requestAnimationFrame(animate);
  else animating = false;
}
$("#player").addEventListener("play", () => {
  if (!animating) {
    animating = true;
    requestAnimationFrame(animate);
  }
});
for (const ev of ["seeked", "timeupdate", "pause"]) $("#player").addEventListener(ev, redraw);
window.addEventListener("resize", redraw);

async function loadDecision(rec, mine) {
  let call;
  try {
    call = await api(`/v1/calls/${encodeURIComponent(rec.call_id)}`);
  } catch (err) {
    if (current === mine) $("#trace").replaceChildren(el("li", { text: `The call could not be read: ${err.message}` }));
    return;
  }
  if (current !== mine) return;
  $("#trace").replaceChildren(...call.recording_trace.map((line) => el("li", { text: line })));
  const reasons = call.recording_decision?.reasons ?? [];
  $("#reasons").textContent = reasons.length ? `Reasons: ${reasons.join("; ")}` : "";
  renderConsent(call.consents?.length ? call.consents : rec.consent ? [rec.consent] : []);
}

function renderConsent(consents) {
  const box = $("#consent");
  box.replaceChildren();
  if (!consents.length) {
    box.append(el("p", { text: "No consent was asked on this call (the number's mode may need only a notice)." }));
    return;
  }
  for (const c of consents) {
    const dl = el("dl", { class: "pairs" });
    fact(dl, "Decision", `${c.decision}${c.digit ? `, by pressing ${c.digit}` : ""}`);
    fact(dl, "When", fmtTime(c.digit_at ?? c.created_at));
    fact(dl, "Consent mode", c.consent_mode);
    fact(dl, "Flow", `${c.flow_id}, version ${c.flow_version}`, true);
    box.append(dl);
    const plays = [];
    for (const n of c.evidence?.notices ?? []) plays.push({ what: `Notice (${(n.kinds ?? []).join(", ")})`, ...n });
    if (c.evidence?.menu) plays.push({ what: "Consent menu", ...c.evidence.menu });
    if (plays.length) {
      box.append(
        el(
          "div",
          { class: "table-wrap", tabindex: "0", role: "region", "aria-label": "Prompts the caller heard" },
          el(
            "table",
            { class: "evidence stack" },
            el("caption", { text: "Prompts the caller heard" }),
            el(
              "thead",
              {},
              el("tr", {}, ...["What", "Prompt", "Played from", "Played to", "Cut short", "SHA-256 of the audio"].map((h) => el("th", { scope: "col", text: h }))),
            ),
            el(
              "tbody",
              {},
              ...plays.map((p) =>
                el(
                  "tr",
                  {},
                  el("td", { text: p.what }),
                  el("td", { class: "mono", text: `${p.prompt} (${p.node})` }),
                  el("td", { text: fmtTime(p.played_from) }),
                  el("td", { text: fmtTime(p.played_to) }),
                  el("td", { text: p.interrupted ? "yes" : "no" }),
                  el("td", { class: "mono", text: p.sha256 }),
                ),
              ),
            ),
          ),
        ),
      );
    }
  }
  for (const table of box.querySelectorAll("table")) labelCells(table);
}

// A transcript, when the API has one: its segments as timed lines, each a
// button that plays from its time. 404 no_transcript means none (yet: the
// error's `state` says whether it is pending, running or failed).
async function loadTranscript(rec, mine) {
  const box = $("#transcript");
  let data;
  try {
    data = await api(`/v1/recordings/${encodeURIComponent(rec.id)}/transcript`);
  } catch (err) {
    if (current !== mine) return;
    let text = `The transcript could not be read: ${err.message}`;
    if (err.code === "no_transcript") {
      text = err.body?.error?.state ? `No transcript: ${err.message}.` : "No transcript.";
    }
    box.replaceChildren(el("p", { class: "muted", text }));
    return;
  }
  if (current !== mine) return;
  const lines = data.segments ?? data.lines ?? data.items ?? [];
  if (!lines.length) {
    box.replaceChildren(el("p", { class: "muted", text: data.text || "No transcript." }));
    return;
  }
  const startOf = (s) => s.start_s ?? (s.start_ms !== undefined ? s.start_ms / 1000 : s.start ?? 0);
  const by = [data.engine, data.model].filter(Boolean).join(", ");
  box.replaceChildren(
    el("p", { class: "hint", text: `Machine transcript${by ? ` (${by}${data.language ? `, ${data.language}` : ""})` : ""}; it may hold mistakes. Select a line to play from there.` }),
    el(
      "ol",
      { class: "transcript" },
      ...lines.map((s) => {
        const t = startOf(s);
        const raw = s.speaker ?? s.channel ?? "";
        const who = raw ? raw[0].toUpperCase() + raw.slice(1) : "";
        return el(
          "li",
          {},
          el(
            "button",
            { type: "button", class: "link", onclick: () => seek(t, true), "aria-label": `Play from ${fmtClock(t)}: ${s.text}` },
            el("span", { class: "mono", text: fmtClock(t) }),
            ` ${who ? `${who}: ` : ""}${s.text}`,
          ),
        );
      }),
    ),
  );
}

// ---------------------------------------------------------------- QA notes, score, tags, deletion

function renderQa(rec) {
  const canWrite = user.role === "supervisor" || user.role === "admin";
  $("#qa-form").hidden = !canWrite;
  $("#delete-box").hidden = !canWrite;
  $("#qa-readonly").hidden = canWrite;
  const notes = rec.notes ?? [];
  $("#no-notes").hidden = notes.length > 0;
  $("#notes").replaceChildren(
    ...notes.map((n) =>
      el("li", {}, el("p", { text: n.text }), el("p", { class: "meta", text: `${fmtTime(n.at)}, by ${n.author_id === user.id ? "you" : people.get(n.author_id) ?? n.author_id ?? "a deleted user"}` })),
    ),
  );
  $("#qa-note").value = "";
  $("#qa-score").value = rec.score ?? "";
  $("#qa-tags").value = rec.tags.join(", ");
}

$("#qa-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  if (!current?.rec) return;
  problem("");
  const rec = current.rec;
  const body = {};
  const note = $("#qa-note").value.trim();
  if (note) body.note = note;
  const scoreText = $("#qa-score").value.trim();
  const score = scoreText === "" ? null : Number(scoreText);
  if (score !== null && !(Number.isInteger(score) && score >= 0 && score <= 100)) {
    problem("The score is a whole number from 0 to 100.");
    $("#qa-score").focus();
    return;
  }
  if (score !== rec.score) body.score = score;
  const tags = [...new Set($("#qa-tags").value.split(",").map((t) => t.trim()).filter(Boolean))].sort();
  if (tags.join("\n") !== [...rec.tags].sort().join("\n")) body.tags = tags;
  if (!Object.keys(body).length) {
    notice("Nothing to save.");
    return;
  }
  try {
    const updated = await api(`/v1/recordings/${encodeURIComponent(rec.id)}`, { method: "PATCH", body });
    current.rec = { ...rec, ...updated };
    renderFacts(current.rec);
    renderQa(current.rec);
    notice("Saved.");
  } catch (err) {
    problem(`Not saved: ${err.message}`);
  }
});

$("#delete").addEventListener("click", async () => {
  if (!current?.rec) return;
  const id = current.rec.id;
  const ok = await confirmDialog({
    title: `Delete recording ${id}?`,
    text: "The audio file, its notes, score and tags are deleted for good. The call keeps its recording decision and consent evidence.",
    confirm: "Delete recording",
  });
  if (!ok) return;
  try {
    await api(`/v1/recordings/${encodeURIComponent(id)}`, { method: "DELETE" });
  } catch (err) {
    problem(`The recording was not deleted: ${err.message}`);
    return;
  }
  leaveDetail();
  notice(`Recording ${id} was deleted.`);
  location.hash = "";
});

start().catch((err) => problem(err instanceof ApiError ? err.message : `The console could not start: ${err.message}`));
