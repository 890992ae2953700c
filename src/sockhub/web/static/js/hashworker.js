// SHA-256 of a Blob (a picked File, or a downloaded body) off the page's thread, read in
// pieces so a large file is never in memory whole. Posts {hashed} as it goes, then {sha256}.

import { hex, Sha256 } from "./sha256.js";

const PIECE = 4 * 1024 * 1024;

onmessage = async (ev) => {
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
