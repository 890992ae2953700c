// One sockhub session over the page's WebSocket: hello, login, requests matched to their
// replies by id, server pushes as events. Reconnecting is the caller's choice (app.js).

import { encodeFrame, FrameReader, utf8 } from "./frames.js";
import { hex, hmacSha256 } from "./sha256.js";

const PARTIAL = new Set(["chat.msg", "exec.out", "file.data", "file.got", "file.ready"]); // non-final frames with re

function b64decode(textValue) {
  const raw = atob(textValue);
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export class HubError extends Error {
  constructor(header) {
    super(header.message || header.code);
    this.code = header.code;
    this.fatal = !!header.fatal;
  }
}

export function wsUrl() {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
}

export class Hub extends EventTarget {
  constructor() {
    super();
    this.ws = null;
    this.nextId = 1;
    this.pending = new Map();
    this.hello = null;
    this.user = null;
    this.grants = [];
    this.pinger = null;
    this.sinks = new Map(); // request id -> receiver of its file.data body, piece by piece
    this.authed = false; // logged in on the current connection (not only on an earlier one)
  }

  // Opens the socket and waits for hello; rejects when the socket cannot open.
  connect(url = wsUrl()) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, "sockhub.v1");
      ws.binaryType = "arraybuffer";
      this.ws = ws;
      const reader = new FrameReader((header) => (header.op === "file.data" ? this.sinks.get(header.re) ?? null : null));
      ws.onmessage = (ev) => {
        let frames;
        try {
          frames = reader.push(new Uint8Array(ev.data));
        } catch (err) {
          ws.close(4000, `bad frame: ${err.message}`);
          return;
        }
        for (const frame of frames) {
          if (!this.hello && frame.header.op === "hello") {
            this.hello = frame.header;
            const idle = (frame.header.limits?.idle_timeout ?? 300) * 1000;
            this.pinger = setInterval(() => this.send({ op: "ping", id: this.id() }), idle / 3);
            resolve(frame.header);
          } else {
            this.dispatch(frame);
          }
        }
      };
      ws.onclose = (ev) => {
        clearInterval(this.pinger);
        const wasOpen = !!this.hello;
        this.hello = null;
        for (const { reject: fail } of this.pending.values()) fail(new HubError({ code: "closed", message: "connection closed" }));
        this.pending.clear();
        this.sinks.clear();
        this.authed = false;
        if (!wasOpen) reject(new Error(`cannot connect (${ev.code})`));
        this.dispatchEvent(new CustomEvent("down", { detail: { code: ev.code, reason: ev.reason } }));
      };
    });
  }

  id() {
    return this.nextId++;
  }

  send(header, body) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(encodeFrame(header, body));
  }

  // Sends a request; resolves with its final reply, rejects with HubError on error.
  // onPartial receives the non-final frames tied to it (history, output).
  request(header, body, onPartial, sink) {
    return this.start(header, body, onPartial, sink).done;
  }

  // The same, also giving the request's id (frames that act on it carry it as target).
  // sink, when given, receives a file.data body piece by piece instead of whole.
  start(header, body, onPartial, sink) {
    const id = this.id();
    if (sink) this.sinks.set(id, sink);
    const done = new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onPartial });
    });
    this.send({ ...header, id }, body);
    return { id, done };
  }

  // Raw bytes of the stream: a body piece after a header sent with its size.
  sendBytes(bytes) {
    if (this.ws?.readyState !== WebSocket.OPEN) throw new HubError({ code: "closed", message: "connection lost" });
    this.ws.send(bytes);
  }

  get buffered() {
    return this.ws?.bufferedAmount ?? 0;
  }

  dispatch({ header, body }) {
    const waiter = header.re !== undefined ? this.pending.get(header.re) : undefined;
    if (waiter) {
      if (PARTIAL.has(header.op)) {
        waiter.onPartial?.(header, body);
        return;
      }
      this.pending.delete(header.re);
      this.sinks.delete(header.re);
      if (header.op === "error") waiter.reject(new HubError(header));
      else waiter.resolve({ header, body });
      return;
    }
    if (header.op === "pong") return;
    this.dispatchEvent(new CustomEvent("push", { detail: { header, body } }));
  }

  // PROTOCOL.md section 3: both sides prove they know the key.
  async login(user, keyBase64) {
    const key = b64decode(keyBase64.trim());
    const snonce = b64decode(this.hello.nonce);
    const cnonce = crypto.getRandomValues(new Uint8Array(32));
    const name = utf8(user);
    const mac = await hmacSha256(key, concat(utf8("sockhub-v1 client\0"), snonce, cnonce, name));
    const cnonceText = btoa(String.fromCharCode(...cnonce));
    const { header } = await this.request({ op: "auth", method: "hmac-sha256", user, cnonce: cnonceText, mac: hex(mac) });
    const expected = await hmacSha256(key, concat(utf8("sockhub-v1 server\0"), cnonce, snonce, name));
    if (header.mac !== hex(expected)) {
      this.ws.close(1000, "server mac mismatch");
      throw new Error("the server does not know this key (its proof did not match)");
    }
    this.user = header.user;
    this.grants = header.grants;
    this.authed = true;
    return header;
  }

  close() {
    this.ws?.close(1000, "bye");
  }
}
