// The service worker that lets a download be written to disk while it arrives. The page
// opens a download here (an id, a name, a size and a MessagePort fed by its hashing
// worker), then navigates to /dl/<id>/<name>; the answer is a streamed attachment, so
// Chromium saves the bytes as they come instead of the page building the file in memory.
// Backpressure: the stream's queue is read by the browser's download writer, and every
// pull reports the bytes it has taken, so the page asks the server for more only as the
// disk keeps up. An error on the port (hash mismatch, connection lost, page gone) errors
// the stream, and Chromium marks the download failed: never a partial file as complete.
// Served at /sw.js and registered with the scope /dl/: it sees no other request.

const HIGH_WATER = 1024 * 1024; // bytes queued in the stream before it stops pulling
const SILENCE = 10_000; // ms without a word from the page after which it is taken for gone

const waiting = new Map(); // id (the URL's second segment) -> a download opened, its navigation not yet come
const running = new Set();
// bytes queued in a stream at most, across every download so far: counters a test reads
self.peakQueued = 0;
self.opened = 0;

function disposition(name) {
  const ascii = name.replace(/[^\x20-\x7e]|["\\%]/g, "_");
  const coded = encodeURIComponent(name).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `attachment; filename="${ascii}"; filename*=UTF-8''${coded}`;
}

class Download {
  constructor({ id, name, size, port }) {
    this.id = id;
    this.name = name;
    this.size = size;
    this.port = port;
    this.enqueued = 0;
    this.heard = Date.now();
    this.wanted = null; // resolves a pull waiting for the next piece
    this.stream = new ReadableStream(
      {
        start: (controller) => (this.controller = controller),
        pull: () => this.pull(),
        cancel: (reason) => this.end({ cancelled: String(reason ?? "cancelled") }),
      },
      new ByteLengthQueuingStrategy({ highWaterMark: HIGH_WATER }),
    );
    port.onmessage = (ev) => this.take(ev.data);
    port.postMessage({ opened: true });
  }

  queued() {
    return HIGH_WATER - (this.controller.desiredSize ?? 0);
  }

  // Called when the stream wants more: tells the page how far the disk has got.
  pull() {
    this.port.postMessage({ delivered: this.enqueued - this.queued() });
    return new Promise((resolve) => (this.wanted = resolve));
  }

  take(message) {
    this.heard = Date.now();
    if (message.piece) {
      this.controller.enqueue(message.piece);
      this.enqueued += message.piece.length;
      self.peakQueued = Math.max(self.peakQueued, this.queued());
      this.wake();
    } else if (message.close) {
      this.controller.close();
      this.end({});
    } else if (message.error) {
      this.fail(message.error);
    }
  }

  wake() {
    const wanted = this.wanted;
    this.wanted = null;
    wanted?.();
  }

  fail(reason) {
    if (this.finished) return;
    this.controller.error(new Error(reason));
    this.end({});
  }

  end(message) {
    if (this.finished) return;
    this.finished = true;
    if (message.cancelled) this.port.postMessage(message);
    this.wake();
    waiting.delete(this.id);
    running.delete(this);
    this.port.close();
  }
}

self.addEventListener("install", () => self.skipWaiting());

self.addEventListener("message", (ev) => {
  const message = ev.data;
  if (message.open) {
    const download = new Download(message.open);
    waiting.set(download.id, download);
    running.add(download);
    self.opened += 1;
  } else if (message.alive) {
    for (const download of running) if (download.id === message.alive) download.heard = Date.now();
  } else if (message.gone) {
    for (const download of running) if (download.id === message.gone) download.fail("the page went away");
  }
});

self.addEventListener("fetch", (ev) => {
  const id = new URL(ev.request.url).pathname.split("/")[2];
  const download = waiting.get(id);
  if (!download) {
    // 204: a navigation to it leaves the page where it is (not an error page)
    ev.respondWith(new Response(null, { status: 204 }));
    return;
  }
  waiting.delete(id);
  const headers = {
    "Content-Type": "application/octet-stream",
    "Content-Disposition": disposition(download.name),
    "Content-Length": String(download.size),
    "X-Content-Type-Options": "nosniff",
  };
  ev.respondWith(new Response(download.stream, { headers }));
});

setInterval(() => {
  for (const download of running) if (Date.now() - download.heard > SILENCE) download.fail("the page went away");
}, SILENCE / 4);
