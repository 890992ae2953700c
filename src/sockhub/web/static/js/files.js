// Files: browse, upload (picker or drop) with progress, speed and ETA, download; every
// transfer checked by SHA-256 (docs/PROTOCOL.md section 7). The hash is computed in a
// worker while the bytes go out; the server checks it before the file appears. A
// transfer cut by a reload or a lost connection resumes when the same file is picked
// again: the server answers file.ready with the bytes it already holds.

import { AHEAD, blobLimit, diskWriter, Saver, WINDOW } from "./download.js";
import { HubError } from "./hub.js";

const PIECE = 1024 * 1024; // bytes per WebSocket message of an upload body
const READ = 4 * 1024 * 1024; // bytes read from the file at a time
const HIGH_WATER = 8 * 1024 * 1024; // bytes the socket may hold unsent before we wait
const HASH_AHEAD = 16 * 1024 * 1024; // bytes given to the hashing worker and not yet hashed
const RECONNECT_WAIT = 60_000; // ms a download waits for a lost connection to come back

// The hashing worker: fed the file's pieces in order, at most HASH_AHEAD bytes ahead of it
// (it tells how far it has got), so a fast socket does not pile the file up in its queue;
// or given the whole File to read itself (file()), when the page needs none of its bytes.
export class Hasher {
  constructor() {
    this.worker = new Worker("/js/hashworker.js", { type: "module" });
    this.given = 0;
    this.hashed = 0;
    this.wake = null;
    this.result = new Promise((resolve, reject) => {
      this.worker.onmessage = (ev) => {
        if (ev.data.hashed !== undefined) {
          this.hashed = ev.data.hashed;
          this.onprogress?.(this.hashed);
        }
        if (ev.data.sha256) resolve(ev.data.sha256);
        if (ev.data.failed) {
          this.failed = new Error(ev.data.failed);
          reject(this.failed);
        }
        this.wake?.();
      };
      this.worker.onerror = (ev) => {
        this.failed = new Error(ev.message || "hashing failed");
        reject(this.failed);
        this.wake?.();
      };
    });
    this.result.catch(() => {}); // awaited by digest(), if the upload gets that far
  }

  async add(bytes) {
    while (!this.failed && this.given - this.hashed > HASH_AHEAD) await new Promise((wake) => (this.wake = wake));
    if (this.failed) throw this.failed;
    this.given += bytes.length;
    this.worker.postMessage({ piece: bytes }, [bytes.buffer]);
  }

  digest() {
    this.worker.postMessage({ end: true });
    return this.result;
  }

  // The sha256 of all of `file`, read in the worker; onprogress(bytes hashed) as it goes.
  file(file, onprogress) {
    this.onprogress = onprogress;
    this.worker.postMessage({ file });
    return this.result;
  }

  close() {
    this.worker.terminate();
  }
}

// The file's pieces of READ bytes in order, [offset, bytes]; the next one is read while
// this one is used.
async function* pieces(file) {
  const read = (at) => file.slice(at, at + READ).arrayBuffer();
  let next = read(0);
  for (let at = 0; at < file.size; at += READ) {
    const bytes = new Uint8Array(await next);
    if (at + READ < file.size) next = read(at + READ);
    yield [at, bytes];
  }
}

function waitFor(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function join(dir, name) {
  return dir ? `${dir}/${name}` : name;
}

export class Files extends EventTarget {
  constructor(hub) {
    super();
    this.hub = hub;
    this.path = "";
    this.entries = [];
    this.transfers = [];
  }

  changed() {
    this.dispatchEvent(new Event("change"));
  }

  async list(path = this.path) {
    const { header } = await this.hub.request({ op: "file.list", path });
    this.path = path;
    this.entries = header.entries;
    this.changed();
  }

  transfer(kind, path, total) {
    const t = { kind, path, total, offset: 0, done: 0, state: "hashing", started: performance.now(), note: "" };
    this.transfers.unshift(t);
    this.changed();
    return t;
  }

  async upload(file) {
    const path = join(this.path, file.name);
    const t = this.transfer("upload", path, file.size);
    try {
      // limit.busy: an upload to this path is still running, typically the one a reload
      // or a lost connection cut, which the server is still tearing down: ask again
      for (let wait = 250; ; wait *= 2) {
        try {
          await this.send(file, path, t);
          break;
        } catch (err) {
          if (!(err instanceof HubError && err.code === "limit.busy") || wait > 8000) throw err;
          t.note = "waiting for the earlier upload to end";
          this.changed();
          await waitFor(wait);
        }
      }
      t.state = "done";
      t.done = t.total;
      this.changed();
    } catch (err) {
      t.state = "failed";
      t.note = err instanceof HubError && err.code === "closed" ? "connection lost: pick the file again to resume" : err.message;
      this.changed();
      return;
    }
    // the folder with its new file; the upload is done whether or not this gets through
    // (a failure is the connection's, which the page's banner shows)
    await this.list().catch(() => {});
  }

  // An upload: file.put, then the body from the offset the server asks for while the
  // hashing worker reads all of the file (the sha256 in file.end is of the whole file,
  // so the bytes before the offset are read for the hash only), then file.end. The body
  // goes as an HTTP POST when the server offers one (a token in file.ready): the browser
  // streams it from the file without it entering the page. Otherwise over the socket.
  async send(file, path, t) {
    let ready;
    const readyKnown = new Promise((resolve) => (ready = resolve));
    const hasher = new Hasher(); // its worker starts while the put is asked
    try {
      const put = this.hub.start({ op: "file.put", path, total: file.size }, undefined, (h) => {
        if (h.op === "file.ready") ready(h);
        else if (h.op === "file.got") this.advanced(t, h.offset, t.hashed);
      });
      const answer = await Promise.race([readyKnown, put.done.then(() => null)]);
      if (answer !== null) {
        t.offset = t.done = t.received = answer.offset;
        t.hashed = 0;
        t.state = "sending";
        t.started = performance.now();
        if (answer.offset) t.note = `resumed at ${answer.offset} bytes`;
        this.changed();
        const sha256 = answer.token ? await this.post(file, answer, put, t, hasher) : await this.stream(file, answer.offset, put, t, hasher);
        t.state = "checking";
        this.changed();
        this.hub.send({ op: "file.end", target: put.id, sha256 });
      }
      const { header } = await put.done;
      t.sha256 = header.sha256 ?? "";
    } finally {
      hasher.close();
    }
  }

  // The body as POST /up/<token>, and the hash meanwhile. The progress shown is what both
  // have done: the bytes hashed, and those the server says it has (file.got). When either
  // fails, the most telling reason is given: the file could not be read (it changed since
  // it was picked: the POST fails too, saying only "Failed to fetch"), else the put's own
  // error (a lost connection, a full disk), else the POST's.
  async post(file, { offset, token }, put, t, hasher) {
    const sent = fetch(`/up/${token}`, { method: "POST", body: file.slice(offset), cache: "no-store" }).then(async (answer) => {
      if (answer.ok) return;
      const why = await answer.json().catch(() => ({}));
      throw new Error(why.message || `the server refused the upload (HTTP ${answer.status})`);
    });
    try {
      const hashed = hasher.file(file, (n) => this.advanced(t, t.received, n));
      const [sha256] = await Promise.all([hashed, sent]);
      return sha256;
    } catch (err) {
      const why = await Promise.race([put.done.then(() => err, (putErr) => putErr), waitFor(2000).then(() => err)]);
      throw hasher.failed ?? why;
    }
  }

  // The body over the socket, one message per PIECE, each piece then moved (not copied)
  // to the hashing worker, which works while the next piece is read and sent.
  async stream(file, offset, put, t, hasher) {
    this.hub.send({ op: "file.data", target: put.id, size: file.size - offset });
    let given = offset;
    for await (const [at, bytes] of pieces(file)) {
      const from = Math.max(0, offset - at);
      if (from < bytes.length) {
        // (a closed socket's bufferedAmount never drains: sendBytes says it is closed)
        while (this.hub.buffered > HIGH_WATER && this.hub.ws.readyState === WebSocket.OPEN) await waitFor(5);
        // send() copies: the piece is free again afterwards
        for (let i = from; i < bytes.length; i += PIECE) this.hub.sendBytes(bytes.subarray(i, i + PIECE));
        given += bytes.length - from;
      }
      t.done = given - this.hub.buffered;
      this.progress();
      await hasher.add(bytes);
    }
    return hasher.digest();
  }

  // A POSTed upload has gone as far as both the server's bytes and the hash.
  advanced(t, received, hashed) {
    t.received = received;
    t.hashed = hashed;
    t.done = Math.max(t.offset, Math.min(received, hashed));
    this.progress();
  }

  // Streamed: the file comes in windows (file.get with length), asked for only as the
  // disk takes what came before (download.js), so the bytes between the socket and the
  // disk stay under AHEAD whatever the speeds; each piece is hashed in a worker on its
  // way out. A connection lost midway is resumed at the bytes handed on, once the page
  // has reconnected. The file is complete only when the SHA-256 of all of it matches.
  async download(name) {
    const path = join(this.path, name);
    const t = this.transfer("download", path, 0);
    t.state = "receiving";
    t.peak = 0;
    let saver = null;
    try {
      const { header } = await this.hub.request({ op: "file.stat", path });
      t.total = header.total;
      const sw = await diskWriter();
      if (!sw && t.total > blobLimit()) {
        throw new Error(
          `too big to download here (over ${blobLimit()} bytes): over plain http the page keeps a download in memory;` +
            " open the page over https or on localhost, where it is written to disk as it arrives, or use `sockhub get`",
        );
      }
      saver = new Saver(name, t.total, sw);
      await saver.open();
      const sha = await this.receive(path, t, saver);
      t.state = "checking";
      this.changed();
      t.sha256 = await saver.finish(sha);
      t.state = "done";
    } catch (err) {
      saver?.abort(err.message);
      t.state = "failed";
      t.note = err.message;
    } finally {
      saver?.close();
      this.changed();
    }
  }

  // The windows from the bytes handed on; after a lost connection, again once the page
  // is back (up to about a minute of waiting). Resolves with the server's sha256.
  async receive(path, t, saver) {
    for (let wait = 250; ; wait = Math.min(wait * 2, 5000)) {
      const offset = saver.written;
      try {
        const sha = await this.windows(path, t, saver, offset);
        if (offset) t.note = `resumed at ${offset} bytes after a lost connection`;
        return sha;
      } catch (err) {
        if (!(err instanceof HubError && err.code === "closed")) throw err;
        t.done = saver.written; // what came of the windows after it is asked for again
        t.note = `connection lost at ${t.done} bytes; resuming`;
        this.changed();
        const until = performance.now() + RECONNECT_WAIT;
        while (!this.hub.authed && performance.now() < until) await waitFor(wait);
        if (!this.hub.authed) {
          throw new Error(`connection lost at ${t.done} bytes and not back within a minute: download the file again`);
        }
      }
    }
  }

  // Asks for window after window, each only when the disk has taken all but AHEAD bytes
  // of what it will have asked for. The first window not yet complete hands its pieces
  // on as they come; those after it keep theirs until their turn (the server may answer
  // two in either order).
  async windows(path, t, saver, from) {
    const offsets = [from];
    while (offsets.at(-1) + WINDOW < t.total) offsets.push(offsets.at(-1) + WINDOW);
    const end = (n) => Math.min(offsets[n] + WINDOW, t.total);
    const pending = [];
    let asked = 0;
    let sha = null;
    for (let n = 0; n < offsets.length; n++) {
      if (asked === n) await saver.room(end(n) - AHEAD);
      while (asked < offsets.length && (asked === n || end(asked) - saver.delivered <= AHEAD)) {
        pending.push(this.window(path, offsets[asked++], t, saver));
      }
      const head = pending.shift();
      head.first();
      const { header, total } = await head.done;
      if (total !== t.total) throw new Error("the file changed on the server during the download");
      sha = header.sha256 ?? sha;
    }
    return sha;
  }

  window(path, offset, t, saver) {
    let parts = [];
    let total = null;
    const sink = (piece) => {
      if (parts) parts.push(piece.slice());
      else saver.write(piece.slice());
      t.done += piece.length;
      t.peak = Math.max(t.peak, t.done - saver.delivered);
      this.progress();
    };
    const asked = this.hub.request({ op: "file.get", path, offset, length: WINDOW }, undefined, (h) => (total = h.total), sink);
    const done = asked.then(({ header }) => ({ header, total }));
    done.catch(() => {}); // a window after one that failed is not awaited
    const first = () => {
      for (const piece of parts) saver.write(piece);
      parts = null;
    };
    return { done, first };
  }

  // A change event at most every 100 ms while the bytes flow.
  progress() {
    if (performance.now() - (this.shown ?? 0) > 100) {
      this.shown = performance.now();
      this.changed();
    }
  }
}

// "42% · 12.3 MB/s · 3 s left" for a running transfer.
export function progressText(t) {
  const fraction = t.total ? t.done / t.total : 1;
  const seconds = (performance.now() - t.started) / 1000;
  const speed = seconds > 0 ? (t.done - t.offset) / seconds : 0;
  const parts = [`${Math.floor(fraction * 100)}%`];
  if ((t.state === "sending" || t.state === "receiving") && speed > 0) {
    parts.push(`${(speed / 1e6).toFixed(1)} MB/s`);
    parts.push(`${Math.ceil((t.total - t.done) / speed)} s left`);
  }
  return parts.join(" · ");
}
