// The relay's binary media records, as pipecat-protoface speaks them (worker/records.py):
// u32 length ‖ u8 type ‖ u32 header length ‖ JSON header ‖ blob, big-endian; the
// length counts everything after itself.

export const Kind = Object.freeze({
  AUDIO: 0x01, FLUSH: 0x02, INTERRUPT: 0x03, LISTEN_AUDIO: 0x04, CLOSE: 0x05,
  READY: 0x10, VIDEO: 0x11, METRICS: 0x12, ERROR: 0x13,
});

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

export function encode(kind, header = {}, blob = new Uint8Array(0)) {
  const head = utf8.encode(JSON.stringify(header));
  const bytes = blob instanceof Uint8Array ? blob : new Uint8Array(blob);
  const out = new Uint8Array(4 + 5 + head.length + bytes.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, 5 + head.length + bytes.length);
  view.setUint8(4, kind);
  view.setUint32(5, head.length);
  out.set(head, 9);
  out.set(bytes, 9 + head.length);
  return out;
}

export function decode(buffer) {
  const view = new DataView(buffer);
  if (buffer.byteLength < 9) throw new Error(`record too short: ${buffer.byteLength} bytes`);
  const length = view.getUint32(0);
  if (length + 4 !== buffer.byteLength) throw new Error("record length prefix mismatch");
  const kind = view.getUint8(4);
  const headLength = view.getUint32(5);
  const headEnd = 9 + headLength;
  const header = headLength ? JSON.parse(fromUtf8.decode(new Uint8Array(buffer, 9, headLength))) : {};
  return { kind, header, blob: new Uint8Array(buffer, headEnd) };
}
