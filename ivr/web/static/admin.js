// The admin dashboard: numbers (with the compliance verdict), users and
// teams, privacy requests with their receipts, the audit log, and billing.
// Admins see all but billing; Owners see users and billing only, because
// they have no access to call data. Every change goes through the API,
// whose access rules decide; the page hides what it would refuse anyway.

import { bindSignInForm, ROLE_NAMES, api, currentUser, problemLines, signOut } from "./api.js";
import { $, confirmDialog, el, fmtBytes, fmtTime, labelCells, renderWho, say } from "./ui.js";

const E164 = /^\+[1-9]\d{1,14}$/;
const problem = (text) => say($("#problem"), text);
const notice = (text) => say($("#notice"), text);

let user = null;
let users = [];
let flows = [];

const SECTIONS = { admin: ["numbers", "people", "privacy", "audit"], owner: ["people", "billing"] };
const ALL = ["numbers", "people", "privacy", "audit", "billing"];

// ---------------------------------------------------------------- sign-in and roles

function refreshWho() {
  renderWho($("#who"), user, async () => {
    await signOut();
    user = null;
    refreshWho();
    notice("You have signed out.");
    layout();
  });
}

function layout() {
  const sections = user ? SECTIONS[user.role] ?? [] : [];
  $("#signin").hidden = Boolean(user);
  $("#not-allowed").hidden = !user || sections.length > 0;
  $("#sections").hidden = sections.length === 0;
  $("#owner-scope").hidden = user?.role !== "owner";
  for (const id of ALL) $(`#${id}`).hidden = !sections.includes(id);
  for (const li of document.querySelectorAll("#sections li")) li.hidden = !sections.includes(li.dataset.for);
  // Owners manage users, not teams.
  const people = user?.role === "owner" ? "Users" : "Users and teams";
  $("#people-title").textContent = people;
  $('#sections li[data-for="people"] a').textContent = people;
  if (user && sections.length === 0) {
    $("#not-allowed-text").textContent =
      `You are signed in as ${withArticle(user.role)}. ` +
      "The admin dashboard is for Admins, and for Owners (users and billing only). " +
      "The QA console is at /qa.";
  }
  return sections;
}

async function start() {
  user = await currentUser();
  refreshWho();
  const sections = layout();
  const loads = [];
  if (sections.includes("numbers")) loads.push(loadNumbers());
  if (sections.includes("people")) loads.push(loadPeople());
  if (sections.includes("privacy")) loads.push(Promise.resolve());
  if (sections.includes("audit")) loads.push(loadAudit());
  if (sections.includes("billing")) loads.push(loadBilling());
  await Promise.all(loads);
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
  layout();
  problem("Your session has ended. Sign in again.");
});

function withArticle(role) {
  return `${role === "supervisor" ? "a" : "an"} ${ROLE_NAMES[role] ?? role}`;
}

// After a change, the audit log (when shown) picks up its entry.
function refreshAudit() {
  if (!$("#audit").hidden) loadAudit();
}

function failed(what, err) {
  const lines = problemLines(err);
  problem(`${what}: ${lines.join(" ")}`);
}

// ---------------------------------------------------------------- numbers

const SWITCHES = [
  ["recording", "Recording"],
  ["transcription", "AI transcription"],
];

async function loadNumbers() {
  let numbers;
  try {
    [numbers, flows] = await Promise.all([api("/v1/numbers"), api("/v1/flows").then((f) => f.items)]);
  } catch (err) {
    failed("The numbers could not be read", err);
    return;
  }
  $("#number-cards").replaceChildren(...numbers.items.map(numberCard));
}

function switchButton(label, on, onChange) {
  const btn = el(
    "button",
    { type: "button", role: "switch", "aria-checked": String(on) },
    label,
    el("span", { class: "state", "aria-hidden": "true", text: on ? "on" : "off" }),
  );
  btn.addEventListener("click", () => {
    const now = btn.getAttribute("aria-checked") !== "true";
    btn.setAttribute("aria-checked", String(now));
    btn.querySelector(".state").textContent = now ? "on" : "off";
    onChange(now);
  });
  return btn;
}

function numberCard(n) {
  const id = n.id;
  const slug = id.replace(/\W/g, "");
  let saved = { ...n };
  const draft = { ...n };
  const verdict = el("div", { class: "verdict", "aria-live": "polite" });
  const dirtyNote = el("p", { class: "dirty-note", hidden: true, text: "Unsaved changes." });
  const card = el("article", { class: "number-card", "aria-labelledby": `n-${slug}-title`, "data-number": id });
  const changed = () => Object.keys(draft).filter((k) => draft[k] !== saved[k]);
  const touch = () => {
    const dirty = changed().length > 0;
    card.dataset.dirty = String(dirty);
    dirtyNote.hidden = !dirty;
    saveBtn.disabled = !dirty;
    checkBtn.disabled = !dirty;
    revertBtn.disabled = !dirty;
  };

  const flowSelect = el(
    "select",
    { id: `n-${slug}-flow` },
    ...flows.map((f) => el("option", { value: f.id, text: f.id, selected: f.id === n.flow })),
  );
  flowSelect.addEventListener("change", () => {
    draft.flow = flowSelect.value;
    touch();
    checkFlow(flowSelect.value, verdict);
  });
  const percent = el("input", { id: `n-${slug}-percent`, type: "number", min: "0", max: "100", step: "1", value: String(n.record_percent) });
  percent.addEventListener("input", () => {
    draft.record_percent = percent.value === "" ? null : Number(percent.value);
    touch();
  });
  const retention = el("input", { id: `n-${slug}-retention`, type: "number", min: "1", max: "36500", step: "1", value: String(n.retention_days) });
  retention.addEventListener("input", () => {
    draft.retention_days = retention.value === "" ? null : Number(retention.value);
    touch();
  });
  const mode = el(
    "select",
    { id: `n-${slug}-mode` },
    el("option", { value: "opt_in", text: "Opt-in", selected: n.consent_mode === "opt_in" }),
    el("option", { value: "notice", text: "Notice only", selected: n.consent_mode === "notice" }),
  );
  mode.addEventListener("change", () => {
    draft.consent_mode = mode.value;
    touch();
  });
  const switches = SWITCHES.map(([key, label]) =>
    switchButton(label, n[key], (on) => {
      draft[key] = on;
      touch();
    }),
  );

  // The verdict before saving: the same checks as saving (PATCH ?dry_run=true), nothing saved.
  const checkBtn = el("button", { type: "button", text: "Check" });
  checkBtn.addEventListener("click", async () => {
    const keys = changed();
    if (!keys.length) {
      setVerdict(verdict, null, "Nothing changed.");
      return;
    }
    const body = Object.fromEntries(keys.map((k) => [k, draft[k]]));
    setVerdict(verdict, "pending", "Checking…");
    try {
      await api(`/v1/numbers/${encodeURIComponent(id)}?dry_run=true`, { method: "PATCH", body });
      setVerdict(verdict, "ok", "Compliant. Not saved yet: use Check and save.");
    } catch (err) {
      if (err.code === "non_compliant") {
        setVerdict(verdict, "bad", `Not compliant: ${err.message}.`, problemLines(err));
      } else {
        setVerdict(verdict, "bad", `Cannot be saved: ${err.message}`);
      }
    }
  });
  const saveBtn = el("button", { type: "button", class: "primary", text: "Check and save" });
  const revertBtn = el("button", { type: "button", text: "Revert" });
  saveBtn.addEventListener("click", async () => {
    const keys = changed();
    if (!keys.length) return;
    const body = Object.fromEntries(keys.map((k) => [k, draft[k]]));
    for (const k of ["record_percent", "retention_days"]) {
      if (k in body && !Number.isInteger(body[k])) {
        setVerdict(verdict, "bad", `Not saved: ${k === "record_percent" ? "the sample" : "the retention"} must be a whole number.`);
        return;
      }
    }
    setVerdict(verdict, "pending", "Checking…");
    try {
      const out = await api(`/v1/numbers/${encodeURIComponent(id)}`, { method: "PATCH", body });
      saved = { ...out };
      Object.assign(draft, out);
      touch();
      const words = keys.map((k) => `${k.replace("_", " ")} ${describe(k, out[k])}`).join(", ");
      setVerdict(verdict, "ok", `Compliant, and saved: ${words}. It applies from the next call.`);
      refreshAudit();
    } catch (err) {
      if (err.code === "non_compliant") {
        setVerdict(verdict, "bad", `Not saved: ${err.message}.`, problemLines(err));
      } else {
        setVerdict(verdict, "bad", `Not saved: ${err.message}`);
      }
      refreshAudit(); // the refusal is audited too
    }
  });
  revertBtn.addEventListener("click", () => {
    Object.assign(draft, saved);
    flowSelect.value = saved.flow;
    percent.value = String(saved.record_percent);
    retention.value = String(saved.retention_days);
    mode.value = saved.consent_mode;
    SWITCHES.forEach(([key], i) => {
      switches[i].setAttribute("aria-checked", String(saved[key]));
      switches[i].querySelector(".state").textContent = saved[key] ? "on" : "off";
    });
    touch();
    setVerdict(verdict, null, "");
  });

  card.append(
    el("h3", { id: `n-${slug}-title` }, el("span", { class: "mono", text: id }), ` ${n.name}`),
    el(
      "div",
      { class: "controls", role: "group", "aria-labelledby": `n-${slug}-title` },
      el("div", { class: "switches" }, ...switches),
      el("div", {}, el("label", { for: flowSelect.id, text: "Flow" }), flowSelect),
      el("div", {}, el("label", { for: mode.id, text: "Consent mode" }), mode),
      el("div", {}, el("label", { for: percent.id, text: "Sample (% of calls recorded)" }), percent),
      el("div", {}, el("label", { for: retention.id, text: "Retention (days)" }), retention),
    ),
    dirtyNote,
    el("div", { class: "actions" }, checkBtn, saveBtn, revertBtn),
    verdict,
  );
  touch();
  return card;
}

function describe(key, value) {
  if (typeof value === "boolean") return value ? "on" : "off";
  if (key === "record_percent") return `${value}%`;
  if (key === "retention_days") return `${value} days`;
  return String(value);
}

function setVerdict(node, kind, text, lines = []) {
  if (kind) node.dataset.kind = kind;
  else delete node.dataset.kind;
  node.replaceChildren();
  if (!text) return;
  node.append(el("p", { text }));
  if (lines.length) node.append(el("ul", {}, ...lines.map((l) => el("li", { text: l }))));
}

// The compliance check of a flow as it stands (POST /v1/flows/check): the
// server checks it for every number that uses it, with their saved settings.
async function checkFlow(flowId, verdict) {
  setVerdict(verdict, "pending", `Checking flow ${flowId}…`);
  try {
    const flow = await api(`/v1/flows/${encodeURIComponent(flowId)}`);
    const out = await api("/v1/flows/check", { method: "POST", body: { id: flow.id, start: flow.start, nodes: flow.nodes } });
    if (out.valid) {
      setVerdict(verdict, "pending", `Flow ${flowId} passes its check (version ${out.version}). The number's own settings are checked when you save.`);
    } else {
      setVerdict(verdict, "bad", `Flow ${flowId} fails its check:`, out.problems.map((p) => p.message));
    }
  } catch (err) {
    setVerdict(verdict, "bad", `Flow ${flowId} could not be checked: ${err.message}`);
  }
}

// ---------------------------------------------------------------- users and teams

const ROLES = ["agent", "supervisor", "admin", "owner"];

async function loadPeople() {
  try {
    users = (await api("/v1/users")).items;
  } catch (err) {
    failed("The users could not be read", err);
    return;
  }
  renderUsers();
  fillAgentSelects();
  const teams = user.role === "admin";
  $("#teams-box").hidden = !teams;
  if (teams) await loadTeams();
}

function rolesFor(target) {
  // Only an Owner grants, changes or removes the Owner role.
  if (user.role === "owner") return ROLES;
  return target?.role === "owner" ? ["owner"] : ROLES.filter((r) => r !== "owner");
}

function renderUsers() {
  const ownerOption = [...$("#u-role").options].some((o) => o.value === "owner");
  if (user.role === "owner" && !ownerOption) $("#u-role").append(el("option", { value: "owner", text: "Owner" }));
  $("#users tbody").replaceChildren(
    ...users.map((u) => {
      const slug = u.id.replace(/\W/g, "");
      const locked = u.id === user.id || (u.role === "owner" && user.role !== "owner");
      const role = el(
        "select",
        { id: `role-${slug}`, "aria-label": `Role of ${u.name}`, disabled: locked },
        ...rolesFor(u).map((r) => el("option", { value: r, text: ROLE_NAMES[r], selected: r === u.role })),
      );
      const teams = el("input", { type: "text", value: u.teams.join(", "), "aria-label": `Teams of ${u.name}`, disabled: locked && u.id !== user.id });
      const save = el("button", { type: "button", text: "Save", "aria-label": `Save ${u.name}` });
      const del = el("button", { type: "button", class: "danger", text: "Delete", "aria-label": `Delete ${u.name}`, disabled: locked });
      save.addEventListener("click", async () => {
        const body = {};
        if (role.value !== u.role) body.role = role.value;
        const t = splitList(teams.value);
        if (t.join(",") !== u.teams.join(",")) body.teams = t;
        if (!Object.keys(body).length) {
          notice(`Nothing to save for ${u.name}.`);
          return;
        }
        if (body.role) {
          const ok = await confirmDialog({
            title: `Make ${u.name} ${withArticle(body.role)}?`,
            text: "A change of role signs the user out everywhere.",
            confirm: "Change role",
            danger: false,
          });
          if (!ok) {
            role.value = u.role;
            return;
          }
        }
        try {
          const out = await api(`/v1/users/${encodeURIComponent(u.id)}`, { method: "PATCH", body });
          Object.assign(u, out);
          notice(`Saved ${u.name}.`);
          refreshAudit();
          renderUsers();
          fillAgentSelects();
        } catch (err) {
          failed(`${u.name} was not saved`, err);
          role.value = u.role;
        }
      });
      del.addEventListener("click", async () => {
        const ok = await confirmDialog({
          title: `Delete ${u.name}?`,
          text: `${u.email} can no longer sign in. Their calls and recordings stay; an erasure removes those.`,
          confirm: "Delete user",
        });
        if (!ok) return;
        try {
          await api(`/v1/users/${encodeURIComponent(u.id)}`, { method: "DELETE" });
          users = users.filter((x) => x.id !== u.id);
          notice(`Deleted ${u.name}.`);
          refreshAudit();
          renderUsers();
          fillAgentSelects();
        } catch (err) {
          failed(`${u.name} was not deleted`, err);
        }
      });
      return el(
        "tr",
        {},
        el("th", { scope: "row", text: u.name }),
        el("td", { class: "mono", text: u.email }),
        el("td", {}, role),
        el("td", {}, teams),
        el("td", {}, el("div", { class: "actions" }, save, del)),
      );
    }),
  );
  labelCells($("#users"));
}

function splitList(text) {
  return [...new Set(text.split(",").map((t) => t.trim()).filter(Boolean))];
}

$("#add-user").addEventListener("submit", async (e) => {
  e.preventDefault();
  problem("");
  const body = {
    name: $("#u-name").value.trim(),
    email: $("#u-email").value.trim(),
    role: $("#u-role").value,
    teams: splitList($("#u-teams").value),
    password: $("#u-password").value,
  };
  if (!body.name || !body.email) {
    problem("Enter the new user's name and e-mail address.");
    return;
  }
  if (body.password.length < 8) {
    problem("The password needs at least 8 characters.");
    $("#u-password").focus();
    return;
  }
  try {
    const out = await api("/v1/users", { method: "POST", body });
    users.push(out);
    users.sort((a, b) => a.email.localeCompare(b.email));
    e.target.reset();
    notice(`Added ${out.name} (${ROLE_NAMES[out.role]}).`);
    refreshAudit();
    renderUsers();
    fillAgentSelects();
  } catch (err) {
    failed("The user was not added", err);
  }
});

async function loadTeams() {
  let teams;
  try {
    teams = (await api("/v1/teams")).items;
  } catch (err) {
    failed("The teams could not be read", err);
    return;
  }
  $("#teams tbody").replaceChildren(
    ...teams.map((t) => {
      const bots = el("input", { type: "number", min: "0", max: "10000", value: String(t.bots), "aria-label": `Bots of team ${t.id}` });
      const save = el("button", { type: "button", text: "Save", "aria-label": `Save team ${t.id}` });
      const del = el("button", { type: "button", class: "danger", text: "Delete", "aria-label": `Delete team ${t.id}` });
      save.addEventListener("click", async () => {
        try {
          await api(`/v1/teams/${encodeURIComponent(t.id)}`, { method: "PATCH", body: { bots: Number(bots.value) } });
          notice(`Team ${t.id} now has ${bots.value} bot(s).`);
          refreshAudit();
          loadTeams();
        } catch (err) {
          failed(`Team ${t.id} was not saved`, err);
        }
      });
      del.addEventListener("click", async () => {
        const ok = await confirmDialog({ title: `Delete team ${t.id}?`, text: "It leaves every user's teams.", confirm: "Delete team" });
        if (!ok) return;
        try {
          await api(`/v1/teams/${encodeURIComponent(t.id)}`, { method: "DELETE" });
          notice(`Deleted team ${t.id}.`);
          refreshAudit();
          loadTeams();
        } catch (err) {
          failed(`Team ${t.id} was not deleted`, err);
        }
      });
      return el(
        "tr",
        {},
        el("th", { scope: "row", class: "mono", text: t.id }),
        el("td", {}, bots),
        el("td", { class: "num", text: t.people_signed_in }),
        el("td", { class: "num", text: t.available }),
        el("td", { class: "num", text: t.waiting_calls }),
        el("td", {}, el("div", { class: "actions" }, save, del)),
      );
    }),
  );
  labelCells($("#teams"));
}

$("#add-team").addEventListener("submit", async (e) => {
  e.preventDefault();
  problem("");
  const id = $("#t-id").value.trim();
  if (!/^[a-z0-9_-]{1,64}$/.test(id)) {
    problem("A team id has 1 to 64 lower-case letters, digits, _ or -.");
    $("#t-id").focus();
    return;
  }
  try {
    await api("/v1/teams", { method: "POST", body: { id, bots: Number($("#t-bots").value || 0) } });
    e.target.reset();
    notice(`Added team ${id}.`);
    refreshAudit();
    loadTeams();
  } catch (err) {
    failed("The team was not added", err);
  }
});

// ---------------------------------------------------------------- privacy requests

function fillAgentSelects() {
  for (const sel of [$("#x-agent"), $("#e-agent")]) {
    sel.replaceChildren(
      ...users
        .filter((u) => u.role !== "owner")
        .map((u) => el("option", { value: u.id, text: `${u.name} (${u.email})` })),
    );
  }
  const actor = $("#a-actor");
  const chosen = actor.value;
  actor.replaceChildren(
    el("option", { value: "", text: "Anyone" }),
    ...users.map((u) => el("option", { value: u.id, text: `${u.name} (${ROLE_NAMES[u.role]})`, selected: u.id === chosen })),
  );
}

for (const [form, name] of [["#export-form", "export-kind"], ["#erase-form", "erase-kind"]]) {
  for (const radio of document.querySelectorAll(`input[name="${name}"]`)) {
    radio.addEventListener("change", () => {
      for (const div of $(form).querySelectorAll("[data-kind]")) div.hidden = div.dataset.kind !== radio.value;
    });
  }
}

function subject(kind, contactInput, agentSelect) {
  if (kind === "contact") {
    const contact = contactInput.value.trim();
    if (!E164.test(contact)) {
      problem("Enter the caller's number in E.164 form, like +15557654321.");
      contactInput.focus();
      return null;
    }
    return { contact };
  }
  if (!agentSelect.value) {
    problem("Choose an agent.");
    return null;
  }
  return { agent_id: agentSelect.value };
}

function subjectWords(s) {
  if (s.contact) return `caller ${s.contact}`;
  const u = users.find((x) => x.id === s.agent_id);
  return u ? `agent ${u.name} (${u.email})` : `agent ${s.agent_id}`;
}

function addReceipt(title, facts, extra = null) {
  $("#no-receipts").hidden = true;
  const dl = el("dl", { class: "pairs" });
  for (const [k, v] of facts) dl.append(el("dt", { text: k }), el("dd", { text: v }));
  $("#receipts").prepend(el("li", {}, el("h4", { text: title }), dl, extra));
}

async function sha256Hex(blob) {
  if (!crypto.subtle) return "not available here (needs HTTPS)";
  const digest = await crypto.subtle.digest("SHA-256", await blob.arrayBuffer());
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

$("#export-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  problem("");
  const kind = document.querySelector('input[name="export-kind"]:checked').value;
  const s = subject(kind, $("#x-contact"), $("#x-agent"));
  if (!s) return;
  const body = { ...s };
  if ($("#x-since").value) body.since = `${$("#x-since").value}T00:00:00Z`;
  if ($("#x-until").value) {
    const d = new Date(`${$("#x-until").value}T00:00:00Z`);
    d.setUTCDate(d.getUTCDate() + 1);
    body.until = d.toISOString();
  }
  notice("Building the export…");
  let blob;
  try {
    const resp = await api("/v1/privacy/exports", { method: "POST", body, raw: true });
    blob = await resp.blob();
  } catch (err) {
    notice("");
    failed("The export was not made", err);
    return;
  }
  const at = new Date();
  const name = `export-${(s.contact ?? s.agent_id).replace(/\W/g, "")}-${at.toISOString().slice(0, 10)}.zip`;
  const link = el("a", { href: URL.createObjectURL(blob), download: name, text: `Download ${name}` });
  addReceipt(
    `Access export for ${subjectWords(s)}`,
    [
      ["Made", fmtTime(at.toISOString())],
      ["Range", `${body.since ? fmtTime(body.since) : "6 months ago"} to ${body.until ? fmtTime(body.until) : "now"}`],
      ["Size", fmtBytes(blob.size)],
      ["SHA-256", await sha256Hex(blob)],
    ],
    el("p", {}, link),
  );
  notice(`The export for ${subjectWords(s)} is ready to download.`);
  refreshAudit();
});

$("#erase-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  problem("");
  const kind = document.querySelector('input[name="erase-kind"]:checked').value;
  const s = subject(kind, $("#e-contact"), $("#e-agent"));
  if (!s) return;
  const ok = await confirmDialog({
    title: `Erase ${subjectWords(s)}?`,
    text: "Their recordings, transcripts and consent records are deleted and their calls pseudonymised, for good.",
    confirm: "Erase for good",
  });
  if (!ok) return;
  try {
    const receipt = await api("/v1/privacy/erasures", { method: "POST", body: s });
    const er = receipt.erased ?? {};
    addReceipt(`Erasure ${receipt.id}`, [
      ["Subject", `${subjectWords(s)} (now ${receipt.subject?.pseudonym ?? "pseudonymised"})`],
      ["At", fmtTime(receipt.at)],
      ["Recordings deleted", String(er.recordings ?? 0)],
      ["Transcripts deleted", String(er.transcripts ?? 0)],
      ["Consent records deleted", String(er.consents ?? 0)],
      ["Calls pseudonymised", String(er.calls_pseudonymised ?? 0)],
    ]);
    notice(`Erased ${subjectWords(s)}: receipt ${receipt.id}.`);
    refreshAudit();
    if (s.agent_id) await loadPeople();
  } catch (err) {
    failed("Nothing was erased", err);
  }
});

$("#run-retention").addEventListener("click", async () => {
  problem("");
  try {
    const receipt = await api("/v1/privacy/retention/run", { method: "POST" });
    const count = Array.isArray(receipt.recordings) ? receipt.recordings.length : receipt.recordings ?? 0;
    addReceipt(`Retention run ${receipt.id ?? ""}`.trim(), [
      ["At", fmtTime(receipt.at ?? new Date().toISOString())],
      ["Recordings past their retention, deleted", String(count)],
      ["Space freed", fmtBytes(receipt.bytes ?? 0)],
    ]);
    notice(`Retention ran: ${count} recording(s) deleted.`);
    refreshAudit();
  } catch (err) {
    failed("Retention did not run", err);
  }
});

// ---------------------------------------------------------------- audit log

const AUDIT_PAGE = 1000; // the API's largest page
const SHOWN = 50;
const auditState = { entries: [], shown: SHOWN };

// The API lists the log oldest first from a sequence number on, so the page
// walks it to the end and shows the newest entries first.
async function loadAudit() {
  const f = {
    action: $("#a-action").value.trim(),
    actor_id: $("#a-actor").value,
    object_id: $("#a-object").value.trim(),
  };
  let after = 0;
  let entries = [];
  try {
    for (let pages = 0; pages < 100; pages++) {
      const out = await api("/v1/audit", { query: { ...f, after, limit: AUDIT_PAGE } });
      entries = entries.concat(out.items).slice(-20 * AUDIT_PAGE);
      if (!out.next) break;
      after = out.next;
    }
  } catch (err) {
    failed("The audit log could not be read", err);
    return;
  }
  auditState.entries = entries.reverse();
  auditState.shown = SHOWN;
  const actions = [...new Set(entries.map((x) => x.action))].sort();
  $("#audit-actions").replaceChildren(...actions.map((a) => el("option", { value: a })));
  renderAudit();
}

function renderAudit() {
  const needle = $("#a-text").value.trim().toLowerCase();
  const names = new Map(users.map((u) => [u.id, u.name]));
  const matching = auditState.entries.filter((x) => !needle || JSON.stringify(x).toLowerCase().includes(needle));
  const rows = matching.slice(0, auditState.shown);
  $("#audit-table tbody").replaceChildren(
    ...rows.map((x) =>
      el(
        "tr",
        {},
        el("td", { class: "num", text: x.seq }),
        el("td", { text: fmtTime(x.at) }),
        el("td", { text: x.actor_id ? `${names.get(x.actor_id) ?? x.actor_id} (${x.actor_role})` : "nobody signed in" }),
        el("td", { class: "mono", text: x.action }),
        el("td", { class: "mono", text: [x.object_type, x.object_id].filter(Boolean).join(" ") }),
        el("td", {}, el("span", { class: `badge ${x.outcome === "ok" ? "ok" : x.outcome === "refused" ? "bad" : "warn"}`, text: x.outcome })),
        el("td", { class: "detail", text: Object.keys(x.detail ?? {}).length ? JSON.stringify(x.detail) : "" }),
      ),
    ),
  );
  labelCells($("#audit-table"));
  $("#audit-summary").textContent = `${matching.length} matching entr${matching.length === 1 ? "y" : "ies"}; showing the newest ${rows.length}.`;
  $("#audit-more").hidden = rows.length >= matching.length;
}

$("#audit-form").addEventListener("submit", (e) => {
  e.preventDefault();
  problem("");
  loadAudit();
});
$("#audit-clear").addEventListener("click", () => {
  $("#audit-form").reset();
  loadAudit();
});
$("#a-text").addEventListener("input", renderAudit);
$("#audit-more").addEventListener("click", () => {
  auditState.shown += SHOWN;
  renderAudit();
});

// ---------------------------------------------------------------- billing

async function loadBilling() {
  const query = {};
  if ($("#b-since").value) query.since = $("#b-since").value;
  if ($("#b-until").value) {
    const d = new Date(`${$("#b-until").value}T00:00:00Z`);
    d.setUTCDate(d.getUTCDate() + 1);
    query.until = d.toISOString().slice(0, 10);
  }
  let b;
  try {
    b = await api("/v1/billing", { query });
  } catch (err) {
    failed("Billing could not be read", err);
    return;
  }
  const dl = $("#billing-facts");
  dl.replaceChildren();
  for (const [k, v] of [
    ["Call minutes", String(b.minutes)],
    ["Recorded minutes", String(b.recorded_minutes)],
    ["Recordings stored now", fmtBytes(b.storage_bytes)],
    ["Seats (users who are not Owners)", String(b.seats)],
    ["Period", `${b.since ? fmtTime(b.since) : "the start"} to ${b.until ? fmtTime(b.until) : "now"}`],
  ]) dl.append(el("dt", { text: k }), el("dd", { text: v }));
}

$("#billing-form").addEventListener("submit", (e) => {
  e.preventDefault();
  loadBilling();
});

start().catch((err) => problem(`The dashboard could not start: ${err.message}`));
