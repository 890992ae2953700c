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
    this.buffer = new Uint8Array(0);
  }

  // Takes one message's bytes; returns the frames it completed, in order.
  push(bytes) {
    let buf = this.buffer.length ? concatBytes(this.buffer, bytes) : bytes;
    const frames = [];
    for (;;) {
      if (buf.length < 4) break;
      const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
      const length = view.getUint32(0);
      if (buf.length < 4 + length) break;
      const header = JSON.parse(decoder.decode(buf.subarray(4, 4 + length)));
      const size = header.size ?? 0;
      if (!Number.isSafeInteger(size) || size < 0) throw new Error("bad frame size");
      if (buf.length < 4 + length + size) break;
      frames.push({ header, body: buf.slice(4 + length, 4 + length + size) });
      buf = buf.subarray(4 + length + size);
    }
    this.buffer = buf.slice();
    return frames;
  }
}

function concatBytes(a, b) {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}
