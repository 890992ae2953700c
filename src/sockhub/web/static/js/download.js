// Where a download goes while it arrives. In a secure context (https, localhost) the
// service worker (/sw.js) streams it to disk: the pieces go through the hashing worker to
// the service worker's stream, which the browser's download writer reads; the last piece
// waits there until the hash of the whole matches the server's. Elsewhere (plain http
// across a LAN, where browsers offer no service worker) the pieces are kept as a Blob and
// saved at the end, up to a bound, since all of it stays with the page until then.

export const WINDOW = 4 * 1024 * 1024; // bytes asked of the server by one file.get
export const AHEAD = 16 * 1024 * 1024; // bytes asked and not yet taken by the disk, at most
const BLOB_LIMIT = 512 * 1024 * 1024;
const HEARTBEAT = 2000; // ms between the page's "still here" to the service worker

// The bound of the Blob path; a user with memory to spare may raise it in localStorage.
export function blobLimit() {
  return Number(localStorage.getItem("sockhub.blobLimit")) || BLOB_LIMIT;
}

let registering = null;

// The active service worker, or null where there is none (not a secure context).
export function diskWriter() {
  if (!window.isSecureContext || !navigator.serviceWorker) return Promise.resolve(null);
  registering ??= navigator.serviceWorker
    .register("/sw.js", { scope: "/dl/" })
    .then(
      (reg) =>
        new Promise((resolve) => {
          const check = () => reg.active && resolve(reg.active);
          (reg.installing ?? reg.waiting)?.addEventListener("statechange", check);
          check();
        }),
    )
    .catch(() => null);
  return registering;
}

export class Saver {
  // sw: the active service worker (to disk), or null (a Blob, saved at the end)
  constructor(name, size, sw) {
    this.name = name;
    this.size = size;
    this.sw = sw;
    this.parts = sw ? null : [];
    this.written = 0; // bytes handed to the hashing worker
    this.delivered = 0; // bytes the disk has taken (the Blob path: all that was written)
    this.failure = null;
    this.waiters = [];
    this.replies = {};
    this.worker = new Worker("/js/hashworker.js", { type: "module" });
    this.worker.onmessage = (ev) => this.heard(ev.data);
  }

  heard(message) {
    if (message.delivered !== undefined) this.delivered = Math.max(this.delivered, message.delivered);
    if (message.cancelled) this.failure = new Error("the download was cancelled in the browser");
    if (message.failed) {
      this.failure = new Error(message.failed);
      this.replies.sha256?.(null);
    }
    for (const key of ["opened", "sha256"]) if (message[key] !== undefined) this.replies[key]?.(message[key]);
    for (const wake of this.waiters.splice(0)) wake();
  }

  reply(key) {
    return new Promise((resolve) => (this.replies[key] = resolve));
  }

  // Opens the stream in the service worker and points the browser at it.
  async open() {
    if (!this.sw) return;
    const id = crypto.randomUUID();
    const channel = new MessageChannel();
    const opened = this.reply("opened");
    this.worker.postMessage({ stream: channel.port1 }, [channel.port1]);
    this.sw.postMessage({ open: { id, name: this.name, size: this.size, port: channel.port2 } }, [channel.port2]);
    await opened;
    this.beat = setInterval(() => this.sw.postMessage({ alive: id }), HEARTBEAT);
    // a reload or a closed tab ends the download at once, not when the silence is noticed
    this.hide = () => this.sw.postMessage({ gone: id });
    window.addEventListener("pagehide", this.hide);
    const a = document.createElement("a");
    a.href = `/dl/${id}/${encodeURIComponent(this.name)}`;
    a.click();
  }

  write(piece) {
    this.written += piece.length;
    if (this.parts) {
      this.parts.push(new Blob([piece]));
      this.delivered = this.written;
    }
    this.worker.postMessage({ piece }, [piece.buffer]);
  }

  // Waits until the disk has taken `until` bytes; throws if the download was cancelled.
  async room(until) {
    while (!this.failure && this.delivered < until) await new Promise((wake) => this.waiters.push(wake));
    if (this.failure) throw this.failure;
  }

  // The whole is in: its hash against the server's; the file is complete on disk (or
  // saved from the Blob) only when they match.
  async finish(expect) {
    const hashed = this.reply("sha256");
    this.worker.postMessage({ end: true, expect });
    const sha256 = await hashed;
    if (this.failure) throw this.failure;
    if (sha256 !== expect) throw new Error("the bytes do not match the server's sha256; nothing saved");
    if (this.parts) {
      const a = document.createElement("a");
      a.href = URL.createObjectURL(new Blob(this.parts));
      a.download = this.name;
      a.click();
      setTimeout(() => URL.revokeObjectURL(a.href), 60_000);
    }
    return sha256;
  }

  // The download failed: the service worker's stream is errored, so the browser marks
  // the file failed rather than complete.
  abort(reason) {
    this.worker.postMessage({ abort: reason });
  }

  // The worker's last words (the close or error of the stream) are out by now: a
  // port's messages go before its closing, which the service worker takes for an error.
  close() {
    clearInterval(this.beat);
    window.removeEventListener("pagehide", this.hide);
    this.worker.terminate();
  }
}
