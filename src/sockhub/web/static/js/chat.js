// Chat state: rooms, members, messages and the last seq seen per room, kept in the tab's
// sessionStorage so a reload or a reconnect rejoins with `since` and gets exactly what
// it missed (PROTOCOL.md section 6): a message whose seq is not above the last one kept
// is a repeat and is dropped. Scroll-back (`chat.history`) puts the page just below the
// oldest seq shown in front, so it never repeats what join or `since` delivered.

import { text, utf8 } from "./frames.js";

const KEEP = 500; // messages kept per room in the tab
const HISTORY = 50; // messages asked for on a first join
const OLDER = 100; // messages asked for by one scroll-back

export class Chat extends EventTarget {
  constructor(hub, store = sessionStorage) {
    super();
    this.hub = hub;
    this.store = store;
    this.rooms = new Map();
    this.active = null;
    this.load();
    hub.addEventListener("push", (ev) => this.onPush(ev.detail.header, ev.detail.body));
  }

  load() {
    const saved = JSON.parse(this.store.getItem("sockhub.chat") || "null");
    if (!saved) return;
    for (const [name, r] of Object.entries(saved.rooms)) {
      this.rooms.set(name, { ...r, members: new Set(), unread: r.unread || 0, firstUnread: null, scrolled: 0, loading: false });
    }
    this.active = saved.active;
  }

  save() {
    const rooms = {};
    for (const [name, r] of this.rooms) {
      const begin = r.begin && r.msgs.length <= KEEP; // the oldest are not cut off
      rooms[name] = { nick: r.nick, dm: r.dm, lastSeq: r.lastSeq, msgs: r.msgs.slice(-KEEP), unread: r.unread, begin };
    }
    this.store.setItem("sockhub.chat", JSON.stringify({ rooms, active: this.active }));
  }

  room(name, dm = false) {
    let r = this.rooms.get(name);
    if (!r) {
      r = { nick: null, dm, lastSeq: 0, msgs: [], members: new Set(), unread: 0, firstUnread: null, begin: false, scrolled: 0, loading: false };
      this.rooms.set(name, r);
    }
    return r;
  }

  changed() {
    this.save();
    this.dispatchEvent(new Event("change"));
  }

  async join(name, nick) {
    const r = this.room(name);
    const header = { op: "chat.join", room: name };
    if (nick) header.nick = nick;
    if (r.lastSeq) header.since = r.lastSeq;
    else header.history = HISTORY;
    const { header: joined } = await this.hub.request(header, undefined, (h, body) => this.onMessage(h, body));
    r.nick = joined.nick;
    r.members = new Set(joined.members);
    // A big room's list comes in pages: the reply holds the first, chat.who the rest.
    for (let after = joined.members_more && joined.members.at(-1); after; ) {
      const { header: page } = await this.hub.request({ op: "chat.who", room: name, after });
      for (const m of page.members || []) r.members.add(m);
      after = page.more && page.members?.length ? page.members.at(-1) : null;
    }
    if (!r.lastSeq) r.lastSeq = joined.seq;
    if (!this.active) this.active = name;
    this.changed();
  }

  // After a reconnect or a reload: every room again, each from its last seq.
  async rejoin(defaultNick) {
    for (const [name, r] of this.rooms) {
      if (!r.dm) await this.join(name, r.nick || defaultNick);
    }
  }

  // Scroll-back: the kept messages just below the oldest seq shown go in front; `begin`
  // once the server keeps nothing older. True when there may be more to load.
  async older(name) {
    const r = this.rooms.get(name);
    if (!r?.nick || r.dm || r.begin || r.loading) return false; // nick: joined once
    const before = r.msgs.find((m) => m.seq !== undefined)?.seq ?? r.lastSeq + 1;
    const page = [];
    const keep = (h, body) => {
      if (h.seq < before) page.push({ from: h.from, text: text(body), ts: h.ts, seq: h.seq, history: true });
    };
    r.loading = true;
    let reply;
    try {
      reply = await this.hub.request({ op: "chat.history", room: name, before, limit: OLDER }, undefined, keep);
    } finally {
      r.loading = false;
    }
    if (this.rooms.get(name) !== r) return false; // left meanwhile
    r.msgs.unshift(...page);
    r.scrolled += page.length;
    r.begin = reply.header.more !== true;
    this.changed();
    return !r.begin;
  }

  async leave(name) {
    const r = this.rooms.get(name);
    if (r && !r.dm) await this.hub.request({ op: "chat.leave", room: name });
    this.rooms.delete(name);
    if (this.active === name) this.active = this.rooms.keys().next().value ?? null;
    this.changed();
  }

  async say(name, words) {
    const r = this.rooms.get(name);
    if (r?.dm) {
      await this.hub.request({ op: "chat.dm", to: name.slice(1) }, utf8(words));
      this.add(name, { from: this.myName(), text: words, ts: Date.now() / 1000, mine: true });
      return;
    }
    await this.hub.request({ op: "chat.say", room: name }, utf8(words));
  }

  async nick(name, nick) {
    await this.hub.request({ op: "chat.nick", room: name, nick });
    const r = this.room(name);
    r.members.delete(r.nick);
    r.members.add(nick);
    r.nick = nick;
    this.changed();
  }

  myName() {
    return this.hub.user || this.rooms.get(this.active)?.nick || "me";
  }

  select(name) {
    this.active = name;
    const r = this.rooms.get(name);
    if (r) {
      r.unread = 0;
      r.firstUnread = null;
    }
    this.changed();
  }

  add(roomName, msg) {
    const r = this.room(roomName, roomName.startsWith("@"));
    r.msgs.push(msg);
    if (r.msgs.length > KEEP + r.scrolled && !r.loading) {
      // (not while a scroll-back is on its way: its page must join the oldest shown)
      r.msgs.splice(0, r.msgs.length - KEEP - r.scrolled);
      r.begin = false; // the oldest are gone from the tab (scroll-back fetches them again)
    }
    if (roomName !== this.active || document.hidden) {
      if (!r.unread) r.firstUnread = msg;
      r.unread++;
    }
    this.changed();
  }

  onMessage(h, body) {
    const words = text(body);
    if (h.dm) {
      this.add(`@${h.from}`, { from: h.from, text: words, ts: h.ts });
      return;
    }
    const r = this.room(h.room);
    if (h.seq <= r.lastSeq) return; // already shown: a reconnect's overlap
    r.lastSeq = h.seq;
    this.add(h.room, { from: h.from, text: words, ts: h.ts, seq: h.seq, history: !!h.history });
  }

  onPush(h, body) {
    if (h.op === "chat.msg") {
      this.onMessage(h, body);
    } else if (h.op === "chat.event") {
      const r = this.rooms.get(h.room);
      if (!r) return;
      if (h.event === "join") r.members.add(h.nick);
      if (h.event === "leave") r.members.delete(h.nick);
      if (h.event === "nick") {
        r.members.delete(h.old);
        r.members.add(h.nick);
      }
      const what = { join: `${h.nick} joined`, leave: `${h.nick} left`, nick: `${h.old} is now ${h.nick}` }[h.event];
      if (what) r.msgs.push({ event: true, text: what, ts: h.ts });
      this.changed();
    }
  }
}
