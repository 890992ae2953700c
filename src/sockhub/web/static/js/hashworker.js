// SHA-256 off the page's thread, of a file given piece by piece as it is read (an upload
// over the socket) or as it arrives (a download): {piece} messages, each answered with
// {hashed} (the bytes hashed so far, so the page can keep its lead bounded), then
// {end, expect}, answered with {sha256}.
// Or of a picked File read here ({file}: an upload whose body the browser POSTs itself):
// {hashed} as it goes, then {sha256}, or {failed} if the file cannot be read. The bytes
// never cross to the page's thread, and a stream reads ahead while a piece is hashed.
// The hash is sha256.wasm's where the browser compiles it (sha256.js); each {sha256}
// names the engine that made it. Messages are taken in order once it is loaded; one that
// fails is answered with {failed}.
// A download written to disk goes through here on its way to the service worker (a
// {stream} port): each piece is passed on once hashed, except the last one, held back
// until the whole hash matches the server's (`expect`), so a file that does not match is
// never complete on disk: the stream is errored instead ({abort} does the same). What
// the service worker says back (bytes delivered, a cancel) is passed to the page.

import { hex, sha256Engine } from "./sha256.js";

let hashes = null; // sha256Engine()'s answer, once loaded
let streaming = null;
let out = null; // the port to the service worker's stream, for a download written to disk
let held = null; // the last piece, not passed on until the hash is known to match

function pass(piece) {
  out?.postMessage({ piece }, [piece.buffer]);
}

function end(expect) {
  const sha256 = hex((streaming ?? hashes.create()).digest());
  if (out && sha256 === expect) {
    if (held) pass(held);
    out.postMessage({ close: true });
  } else {
    out?.postMessage({ error: "the bytes do not match the server's sha256" });
  }
  held = null;
  postMessage({ sha256, engine: hashes.engine });
}

async function hashFile(file) {
  const sha = hashes.create();
  try {
    const reader = file.stream().getReader();
    for (let read = await reader.read(); !read.done; read = await reader.read()) {
      sha.update(read.value);
      postMessage({ hashed: sha.length });
    }
  } catch (err) {
    postMessage({ failed: `${file.name} could not be read (${err.message}); was it changed or moved?` });
    return;
  }
  postMessage({ sha256: hex(sha.digest()), engine: hashes.engine });
}

function handle(message) {
  if (message.file) {
    hashFile(message.file);
  } else if (message.piece) {
    streaming ??= hashes.create();
    streaming.update(message.piece);
    postMessage({ hashed: streaming.length });
    if (held) pass(held);
    held = out ? message.piece : null;
  } else if (message.end) {
    end(message.expect);
  } else if (message.stream) {
    out = message.stream;
    out.onmessage = (reply) => postMessage(reply.data);
  } else if (message.abort) {
    out?.postMessage({ error: message.abort });
  }
}

let taken = sha256Engine().then((loaded) => (hashes = loaded));
onmessage = (ev) => {
  taken = taken.then(() => handle(ev.data)).catch((err) => postMessage({ failed: `hashing failed: ${err.message}` }));
};
