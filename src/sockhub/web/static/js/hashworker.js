// SHA-256 off the page's thread. Either of a Blob (a picked File), read in pieces so a
// large file is never in memory whole: posts {hashed} as it goes, then {sha256}; or of a
// download as it arrives: {piece} messages, then {end}, answered with {sha256}.

import { hex, Sha256 } from "./sha256.js";

const PIECE = 4 * 1024 * 1024;

let streaming = null;

onmessage = async (ev) => {
  if (ev.data.piece) {
    streaming ??= new Sha256();
    streaming.update(ev.data.piece);
    return;
  }
  if (ev.data.end) {
    postMessage({ sha256: hex((streaming ?? new Sha256()).digest()) });
    return;
  }
  const blob = ev.data.blob;
  const hash = new Sha256();
  try {
    for (let at = 0; at < blob.size; at += PIECE) {
      hash.update(new Uint8Array(await blob.slice(at, at + PIECE).arrayBuffer()));
      postMessage({ hashed: Math.min(blob.size, at + PIECE) });
    }
    postMessage({ sha256: hex(hash.digest()) });
  } catch (err) {
    postMessage({ error: String(err) });
  }
};
