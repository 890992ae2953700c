// SHA-256 and HMAC-SHA256 in plain JavaScript, for pages served over plain http to
// another machine, where browsers hide crypto.subtle (it needs a secure context).
// Streaming: update() any number of times, then digest().
// For whole files (the hashing worker), the same with its compression compiled to
// WebAssembly (../sha256.wat), about twice as fast: sha256Engine().

const K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

// Int32Array and `| 0` everywhere: the engine keeps every word a small integer, where
// Uint32Array's words past 2^31 would be read as doubles (several times slower).
export class Sha256 {
  constructor() {
    this.h = new Int32Array([
      0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
    ]);
    this.block = new Uint8Array(64);
    this.used = 0;
    this.length = 0;
    this.w = new Int32Array(64);
  }

  update(bytes) {
    let i = 0;
    this.length += bytes.length;
    if (this.used) {
      const take = Math.min(64 - this.used, bytes.length);
      this.block.set(bytes.subarray(0, take), this.used);
      this.used += take;
      i = take;
      if (this.used < 64) return this;
      this.compress(this.block, 0, 64);
      this.used = 0;
    }
    const whole = i + ((bytes.length - i) & ~63);
    if (whole > i) this.compress(bytes, i, whole);
    this.block.set(bytes.subarray(whole), 0);
    this.used = bytes.length - whole;
    return this;
  }

  digest() {
    const bits = this.length * 8;
    const pad = new Uint8Array((this.used < 56 ? 56 : 120) - this.used + 8);
    pad[0] = 0x80;
    const view = new DataView(pad.buffer);
    view.setUint32(pad.length - 8, Math.floor(bits / 2 ** 32));
    view.setUint32(pad.length - 4, bits >>> 0);
    this.update(pad);
    const out = new Uint8Array(32);
    const outView = new DataView(out.buffer);
    this.h.forEach((word, n) => outView.setInt32(n * 4, word));
    return out;
  }

  // The blocks of bytes[from .. to) (a multiple of 64), one call for all of them.
  compress(bytes, from, to) {
    const w = this.w;
    const H = this.h;
    let h0 = H[0], h1 = H[1], h2 = H[2], h3 = H[3], h4 = H[4], h5 = H[5], h6 = H[6], h7 = H[7];
    for (let at = from; at < to; at += 64) {
      for (let t = 0; t < 16; t++) {
        const p = at + t * 4;
        w[t] = (bytes[p] << 24) | (bytes[p + 1] << 16) | (bytes[p + 2] << 8) | bytes[p + 3];
      }
      for (let t = 16; t < 64; t++) {
        const x = w[t - 15], y = w[t - 2];
        const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
        const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
        w[t] = (w[t - 16] + s0 + w[t - 7] + s1) | 0;
      }
      let a = h0, b = h1, c = h2, d = h3, e = h4, f = h5, g = h6, h = h7;
      for (let t = 0; t < 64; t++) {
        const s1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
        const ch = (e & f) ^ (~e & g);
        const t1 = (h + s1 + ch + K[t] + w[t]) | 0;
        const s0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
        const maj = (a & b) ^ (a & c) ^ (b & c);
        h = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + s0 + maj) | 0;
      }
      h0 = (h0 + a) | 0; h1 = (h1 + b) | 0; h2 = (h2 + c) | 0; h3 = (h3 + d) | 0;
      h4 = (h4 + e) | 0; h5 = (h5 + f) | 0; h6 = (h6 + g) | 0; h7 = (h7 + h) | 0;
    }
    H[0] = h0; H[1] = h1; H[2] = h2; H[3] = h3; H[4] = h4; H[5] = h5; H[6] = h6; H[7] = h7;
  }
}

const INPUT = 1024; // where sha256.wasm takes its input in its memory
const SPAN = 1024 * 1024; // the most input it takes at a time

// Sha256 with the blocks compressed by sha256.wasm; its state lives in the module's memory.
class WasmSha256 extends Sha256 {
  constructor(module) {
    super();
    const { exports } = new WebAssembly.Instance(module);
    this.blocks = exports.compress;
    this.memory = new Uint8Array(exports.memory.buffer);
    const state = new Int32Array(exports.memory.buffer, 0, 8);
    state.set(this.h);
    this.h = state;
  }

  compress(bytes, from, to) {
    for (let at = from; at < to; at += SPAN) {
      const end = Math.min(to, at + SPAN);
      this.memory.set(bytes.subarray(at, end), INPUT);
      this.blocks(INPUT, INPUT + end - at);
    }
  }
}

// How to make SHA-256 hashers here: {engine: "wasm" or "js", create()}. WebAssembly's
// when the browser compiles sha256.wasm (the page's CSP allows it with
// 'wasm-unsafe-eval'), else this file's JavaScript.
export async function sha256Engine(url = "/js/sha256.wasm") {
  try {
    const module = await WebAssembly.compileStreaming(fetch(url));
    new WasmSha256(module); // an instance can be made here, too
    return { engine: "wasm", create: () => new WasmSha256(module) };
  } catch {
    return { engine: "js", create: () => new Sha256() };
  }
}

export function sha256(bytes) {
  return new Sha256().update(bytes).digest();
}

export function hmacSha256Js(key, message) {
  const block = new Uint8Array(64);
  block.set(key.length > 64 ? sha256(key) : key);
  const inner = block.map((x) => x ^ 0x36);
  const outer = block.map((x) => x ^ 0x5c);
  const innerHash = new Sha256().update(inner).update(message).digest();
  return new Sha256().update(outer).update(innerHash).digest();
}

// WebCrypto where the browser offers it (https, localhost), this file's code elsewhere.
export async function hmacSha256(key, message) {
  if (globalThis.crypto?.subtle) {
    const k = await crypto.subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    return new Uint8Array(await crypto.subtle.sign("HMAC", k, message));
  }
  return hmacSha256Js(key, message);
}

export function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
