// sockhub frames (docs/PROTOCOL.md section 1): 4-byte big-endian header length, JSON
// header, body of header.size bytes. Over the WebSocket the binary messages carry the
// same byte stream as TCP: a message may hold several frames, and a long body may go on
// in the next messages, so the reader below keeps what is left over.

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

export function utf8(text) {
  return encoder.encode(text);
}

export function text(bytes) {
  return decoder.decode(bytes);
}

export function encodeFrame(header, body = new Uint8Array(0)) {
  const head = encoder.encode(JSON.stringify(body.length ? { ...header, size: body.length } : header));
  const out = new Uint8Array(4 + head.length + body.length);
  new DataView(out.buffer).setUint32(0, head.length);
  out.set(head, 4);
  out.set(body, 4 + head.length);
  return out;
}

export class FrameReader {
  constructor() {
    this.head = new Uint8Array(0); // bytes of a frame whose header is not complete yet
    this.body = null; // { header, parts, need }: a frame whose header is in, body coming
  }

  // Takes one message's bytes; returns the frames it completed, in order. A long body
  // is collected as a list of pieces and joined once, not copied again per message.
  push(bytes) {
    const frames = [];
    let buf = bytes;
    while (buf.length) {
      if (this.body) {
        const take = Math.min(this.body.need, buf.length);
        this.body.parts.push(buf.subarray(0, take));
        this.body.need -= take;
        buf = buf.subarray(take);
        if (!this.body.need) {
          frames.push({ header: this.body.header, body: joinParts(this.body.parts) });
          this.body = null;
        }
        continue;
      }
      if (this.head.length) {
        buf = joinParts([this.head, buf]);
        this.head = new Uint8Array(0);
      }
      if (buf.length < 4) break;
      const length = new DataView(buf.buffer, buf.byteOffset, 4).getUint32(0);
      if (buf.length < 4 + length) break;
      const header = JSON.parse(decoder.decode(buf.subarray(4, 4 + length)));
      const size = header.size ?? 0;
      if (!Number.isSafeInteger(size) || size < 0) throw new Error("bad frame size");
      this.body = { header, parts: [], need: size };
      buf = buf.subarray(4 + length);
      if (!size) {
        frames.push({ header, body: new Uint8Array(0) });
        this.body = null;
      }
    }
    if (buf.length && !this.body) this.head = buf.slice();
    return frames;
  }

  // Bytes of the body now arriving (for a download's progress), or 0.
  get receiving() {
    return this.body ? this.body.header.size - this.body.need : 0;
  }
}

function joinParts(parts) {
  if (parts.length === 1) return parts[0].slice();
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
