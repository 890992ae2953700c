// The page: log in (or not), then chat. The connection is re-opened after any drop with
// a growing delay; the banner says so and clears itself once every room is rejoined.

import { Chat } from "./chat.js";
import { Files, join, progressText } from "./files.js";
import { Hub } from "./hub.js";
import { el } from "./safe.js";
import { Term } from "./term.js";

const $ = (id) => document.getElementById(id);
const hub = new Hub();
const chat = new Chat(hub);
const files = new Files(hub);
let term = null; // made the first time the terminal is shown: it needs a visible panel
let login = JSON.parse(sessionStorage.getItem("sockhub.login") || "null");
let retry = 0;
let retryTimer = null;
let follow = true; // the log keeps its newest message in view until the reader scrolls up

function banner(message) {
  $("banner").textContent = message || "";
  $("banner").hidden = !message;
}

function time(ts) {
  return new Date(ts * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function renderMessage(m) {
  if (m.event) return el("li", "msg event", m.text);
  const li = el("li", m.history ? "msg history" : "msg");
  if (m.seq !== undefined) li.dataset.seq = m.seq;
  li.append(el("span", "time", time(m.ts)), el("bdi", "from", m.from), el("span", "text", m.text));
  return li;
}

// The first message in view and its distance from the top of the log: put back there
// after a render, the reader's view stays put when older messages arrive above it.
function topInView(list) {
  const top = list.getBoundingClientRect().top;
  for (const li of list.querySelectorAll("li[data-seq]")) {
    const box = li.getBoundingClientRect();
    if (box.bottom > top) return { seq: li.dataset.seq, at: box.top - top };
  }
  return null;
}

function keepInView(list, anchor) {
  const li = list.querySelector(`li[data-seq="${anchor.seq}"]`);
  if (li) list.scrollTop += li.getBoundingClientRect().top - list.getBoundingClientRect().top - anchor.at;
}

function scrolled() {
  const list = $("messages");
  follow = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
  scrollBack();
}

// At the top of a room's log: its older messages, page after page while the top stays
// in view and the server keeps more.
async function scrollBack() {
  const list = $("messages");
  if (!chat.active || list.clientHeight === 0 || list.scrollTop > 40) return;
  try {
    if (await chat.older(chat.active)) await scrollBack();
  } catch (err) {
    $("chat-error").textContent = err.message;
  }
}

function render() {
  const rooms = $("rooms");
  rooms.replaceChildren();
  for (const [name, r] of chat.rooms) {
    const li = el("li", name === chat.active ? "active" : "", name);
    li.dataset.room = name;
    if (r.unread) li.append(el("span", "unread", String(r.unread)));
    li.addEventListener("click", () => chat.select(name));
    rooms.append(li);
  }
  const r = chat.rooms.get(chat.active);
  $("title").textContent = chat.active || "";
  const list = $("messages");
  if (list.dataset.room !== chat.active) follow = true; // another room: its newest
  const anchor = follow ? null : topInView(list);
  list.replaceChildren();
  list.dataset.room = chat.active || "";
  if (r?.begin) list.append(el("li", "divider begin", "beginning of history"));
  for (const m of r?.msgs || []) {
    if (m === r.firstUnread) list.append(el("li", "divider", "new"));
    list.append(renderMessage(m));
  }
  if (follow) list.scrollTop = list.scrollHeight;
  else if (anchor) keepInView(list, anchor);
  if (list.scrollHeight <= list.clientHeight) scrollBack(); // no scrollbar yet: fill the view
  const members = $("members");
  members.replaceChildren();
  for (const nick of [...(r?.members || [])].sort()) {
    const li = el("li", "", nick);
    li.title = `direct message to ${nick}`;
    li.addEventListener("click", () => {
      chat.room(`@${nick}`, true);
      chat.select(`@${nick}`);
    });
    members.append(li);
  }
  $("whoami").textContent = hub.user ? `logged in as ${hub.user}` : `anonymous (${r?.nick || login?.nick || ""})`;
}

function size(n) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let u = 0;
  while (n >= 1000 && u < units.length - 1) {
    n /= 1000;
    u++;
  }
  return `${u ? n.toFixed(1) : n} ${units[u]}`;
}

function renderFiles() {
  $("files-path").textContent = `/${files.path}`;
  const list = $("entries");
  list.replaceChildren();
  if (files.path) {
    const up = el("li", "dir", "..");
    up.addEventListener("click", () => files.list(files.path.split("/").slice(0, -1).join("/")));
    list.append(up);
  }
  const sorted = [...files.entries].sort((a, b) => (a.type === b.type ? a.name.localeCompare(b.name) : a.type === "dir" ? -1 : 1));
  for (const entry of sorted) {
    const li = el("li", entry.type, entry.type === "dir" ? `${entry.name}/` : entry.name);
    li.dataset.name = entry.name;
    if (entry.type === "file") li.append(el("span", "size", size(entry.size)));
    li.addEventListener("click", () => (entry.type === "dir" ? files.list(join(files.path, entry.name)) : files.download(entry.name)));
    list.append(li);
  }
  const transfers = $("transfers");
  transfers.replaceChildren();
  for (const t of files.transfers) {
    const li = el("li", `state-${t.state}`);
    li.dataset.path = t.path;
    li.dataset.state = t.state;
    if (t.peak) li.dataset.peak = t.peak; // bytes held between socket and disk, at most
    const bar = document.createElement("progress");
    bar.max = t.total || 1;
    bar.value = t.done;
    const words = [t.kind, t.path, t.state, progressText(t), t.note, t.sha256 ? `sha256 ${t.sha256.slice(0, 16)}…` : ""];
    li.append(el("div", "what", words.filter(Boolean).join(" · ")), bar);
    transfers.append(li);
  }
}

function terminal() {
  if (!term) {
    term = new Term(hub, $("term"));
    term.addEventListener("change", () => ($("run-status").textContent = term.status));
  }
  return term;
}

function show(panel) {
  $("files-panel").hidden = panel !== "files";
  $("term-panel").hidden = panel !== "term";
  $("chat-panel").hidden = panel !== "chat";
  $("members-panel").hidden = panel !== "chat";
  if (panel === "files") files.list().catch((err) => ($("chat-error").textContent = err.message));
  if (panel === "term") terminal().resize();
}

function grantsChanged() {
  $("tab-files").hidden = !hub.grants.includes("files");
  $("tab-term").hidden = !hub.grants.includes("exec") || !hub.hello?.services?.includes("exec");
}

async function start() {
  await hub.connect();
  if (login.user) await hub.login(login.user, login.key);
  grantsChanged();
  await chat.rejoin(login.nick || undefined);
  retry = 0;
  banner("");
}

// A failed attempt ends in the socket's close, whose "down" event schedules the next one.
function reconnectSoon() {
  if (retryTimer) return;
  const delay = Math.min(5000, 250 * 2 ** retry++);
  banner(`Connection lost; reconnecting in ${Math.ceil(delay / 1000)} s…`);
  retryTimer = setTimeout(async () => {
    retryTimer = null;
    try {
      await start();
    } catch (err) {
      banner(`Connection lost; reconnecting… (${err.message})`);
      if (hub.ws?.readyState === WebSocket.OPEN) hub.close();
    }
  }, delay);
}

hub.addEventListener("down", () => {
  if (login) reconnectSoon();
});
chat.addEventListener("change", render);
$("messages").addEventListener("scroll", scrolled);
files.addEventListener("change", renderFiles);
$("download-note").hidden = window.isSecureContext && !!navigator.serviceWorker;
$("tab-chat").addEventListener("click", () => show("chat"));
$("tab-files").addEventListener("click", () => show("files"));
$("tab-term").addEventListener("click", () => show("term"));
$("run-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const cmd = $("run-cmd").value.trim();
  if (cmd) terminal().start(cmd).catch(() => {}); // the failure is in the status line
});
$("run-kill").addEventListener("click", () => term?.kill());
window.addEventListener("resize", () => !$("term-panel").hidden && term?.resize());
$("upload-input").addEventListener("change", (ev) => {
  for (const file of ev.target.files) files.upload(file);
  ev.target.value = "";
});
$("drop").addEventListener("dragover", (ev) => {
  ev.preventDefault();
  $("drop").classList.add("over");
});
$("drop").addEventListener("dragleave", () => $("drop").classList.remove("over"));
$("drop").addEventListener("drop", (ev) => {
  ev.preventDefault();
  $("drop").classList.remove("over");
  for (const file of ev.dataTransfer.files) files.upload(file);
});
document.addEventListener("visibilitychange", () => !document.hidden && chat.active && chat.select(chat.active));

$("login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("login-error").textContent = "";
  // kept apart from `login` until it works: a failed first login must not reconnect
  const attempt = { user: $("user").value.trim(), key: $("key").value, nick: $("nick").value.trim() };
  const room = $("room").value.trim() || "lobby";
  try {
    await hub.connect();
    if (attempt.user) await hub.login(attempt.user, attempt.key);
    grantsChanged();
    await chat.join(room, attempt.nick || undefined);
  } catch (err) {
    hub.close();
    $("login-error").textContent = err.message;
    return;
  }
  login = attempt;
  sessionStorage.setItem("sockhub.login", JSON.stringify(login));
  $("login").hidden = true;
  $("chat").hidden = false;
  chat.select(room);
});

async function command(line) {
  const room = chat.active;
  const [word, ...rest] = line.split(" ");
  if (word === "/nick") return chat.nick(room, rest.join(" ").trim());
  if (word === "/join") {
    await chat.join(rest[0], chat.rooms.get(room)?.nick || login.nick || undefined);
    return chat.select(rest[0]);
  }
  if (word === "/leave") return chat.leave(room);
  if (word === "/msg") {
    chat.room(`@${rest[0]}`, true);
    return chat.say(`@${rest[0]}`, rest.slice(1).join(" "));
  }
  return chat.say(room, line);
}

$("say-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const line = $("input").value;
  if (!line.trim() || !chat.active) return;
  $("chat-error").textContent = "";
  $("input").value = "";
  try {
    await command(line);
  } catch (err) {
    $("chat-error").textContent = err.message;
    if (!$("input").value) $("input").value = line;
  }
});

$("join-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const name = $("join-room").value.trim();
  if (!name) return;
  try {
    await chat.join(name, chat.rooms.get(chat.active)?.nick || login.nick || undefined);
    chat.select(name);
    $("join-room").value = "";
  } catch (err) {
    $("chat-error").textContent = err.message;
  }
});

if (login) {
  $("login").hidden = true;
  $("chat").hidden = false;
  render();
  start().catch((err) => {
    banner(`Reconnecting… (${err.message})`);
    if (hub.ws?.readyState === WebSocket.OPEN) hub.close();
  });
}
