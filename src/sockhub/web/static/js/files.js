// Files: browse, upload (picker or drop) with progress, speed and ETA, download; every
// transfer checked by SHA-256 (docs/PROTOCOL.md section 7). The hash is computed in a
// worker while the bytes go out; the server checks it before the file appears. A
// transfer cut by a reload or a lost connection resumes when the same file is picked
// again: the server answers file.ready with the bytes it already holds.

import { HubError } from "./hub.js";

const PIECE = 1024 * 1024; // bytes per WebSocket message of an upload body
const HIGH_WATER = 8 * 1024 * 1024; // bytes the socket may hold unsent before we wait

export function hashBlob(blob, onProgress) {
  return new Promise((resolve, reject) => {
    const worker = new Worker("/js/hashworker.js", { type: "module" });
    worker.onmessage = (ev) => {
      if (ev.data.hashed !== undefined) onProgress?.(ev.data.hashed);
      if (ev.data.sha256 || ev.data.error) {
        worker.terminate();
        if (ev.data.sha256) resolve(ev.data.sha256);
        else reject(new Error(ev.data.error));
      }
    };
    worker.onerror = (ev) => {
      worker.terminate();
      reject(new Error(ev.message || "hashing failed"));
    };
    worker.postMessage({ blob });
  });
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
      await this.list();
    } catch (err) {
      t.state = "failed";
      t.note = err instanceof HubError && err.code === "closed" ? "connection lost: pick the file again to resume" : err.message;
      this.changed();
    }
  }

  async send(file, path, t) {
    const hashing = hashBlob(file, (n) => {
      t.hashed = n;
      this.changed();
    });
    let ready;
    const offsetKnown = new Promise((resolve) => (ready = resolve));
    const put = this.hub.start({ op: "file.put", path, total: file.size }, undefined, (h) => {
      if (h.op === "file.ready") ready(h.offset);
    });
    const offset = await Promise.race([offsetKnown, put.done.then(() => null)]);
    if (offset !== null) {
      t.offset = t.done = offset;
      t.state = "sending";
      t.started = performance.now();
      if (offset) t.note = `resumed at ${offset} bytes`;
      this.changed();
      this.hub.send({ op: "file.data", target: put.id, size: file.size - offset });
      // the header says size; the body follows in pieces, one message each
      let given = offset;
      for (let at = offset; at < file.size; at += PIECE) {
        while (this.hub.buffered > HIGH_WATER) {
          t.done = given - this.hub.buffered;
          this.changed();
          await waitFor(25);
        }
        const bytes = new Uint8Array(await file.slice(at, at + PIECE).arrayBuffer());
        this.hub.sendBytes(bytes);
        given += bytes.length;
        t.done = given - this.hub.buffered;
        this.changed();
      }
      t.state = "checking";
      this.changed();
      this.hub.send({ op: "file.end", target: put.id, sha256: await hashing });
    }
    const { header } = await put.done;
    t.sha256 = header.sha256 ?? "";
  }

  async download(name) {
    const path = join(this.path, name);
    const entry = this.entries.find((e) => e.name === name);
    const t = this.transfer("download", path, entry?.size ?? 0);
    t.state = "receiving";
    try {
      let data = new Uint8Array(0);
      const { header } = await this.hub.request({ op: "file.get", path, offset: 0 }, undefined, (h, body) => {
        if (h.op === "file.data") data = body;
      });
      t.done = data.length;
      t.state = "checking";
      this.changed();
      const blob = new Blob([data]);
      const sha = await hashBlob(blob);
      if (sha !== header.sha256) throw new Error("the bytes do not match the server's sha256; nothing saved");
      t.sha256 = sha;
      t.state = "done";
      this.changed();
      const a = document.createElement("a");
      a.href = URL.createObjectURL(blob);
      a.download = name;
      a.click();
      setTimeout(() => URL.revokeObjectURL(a.href), 60_000);
    } catch (err) {
      t.state = "failed";
      t.note = err.message;
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
  if (t.state === "sending" && speed > 0) {
    parts.push(`${(speed / 1e6).toFixed(1)} MB/s`);
    parts.push(`${Math.ceil((t.total - t.done) / speed)} s left`);
  }
  return parts.join(" · ");
}
