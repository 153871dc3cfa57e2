import { createHash } from 'node:crypto';
import { FeatureCacheCorruptError } from './errors.js';

/** One named float32 tensor of a cache entry, without tfjs. */
export interface RawTensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

interface HeaderTensor {
  name: string;
  shape: number[];
  dtype: 'float32';
  /** Byte offset in the payload. */
  offset: number;
  /** Byte length in the payload. */
  bytes: number;
}

interface EntryHeader {
  v: 1;
  key: string;
  /** Float byte order of the payload. */
  endian: 'le';
  tensors: HeaderTensor[];
  payloadBytes: number;
  /** SHA-256 (hex) of the payload. */
  sha256: string;
}

/** First bytes of every entry, so a stray file is never parsed as one. */
const MAGIC = Buffer.from('TLSWFC01', 'latin1');
const PREFIX = MAGIC.length + 4;

// Entries are read on the machine that wrote them or one like it; a big-endian reader must not reinterpret bytes.
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * Serializes tensors: magic, u32 LE header length, the JSON header (key,
 * shapes, dtypes, byte offsets, SHA-256 of the payload) padded to 8 bytes,
 * then the raw float32 data in header order.
 */
export function encodeEntry(key: string, tensors: readonly RawTensor[]): Buffer {
  if (!LITTLE_ENDIAN) throw new Error('feature cache entries are little-endian; this machine is not');
  const parts: Buffer[] = [];
  const described: HeaderTensor[] = [];
  let offset = 0;
  const hash = createHash('sha256');
  for (const t of tensors) {
    const bytes = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    described.push({ name: t.name, shape: [...t.shape], dtype: 'float32', offset, bytes: bytes.length });
    hash.update(bytes);
    parts.push(bytes);
    offset += bytes.length;
  }
  const header: EntryHeader = { v: 1, key, endian: 'le', tensors: described, payloadBytes: offset, sha256: hash.digest('hex') };
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  // Pad with spaces (still valid JSON) so the payload starts 8-byte aligned.
  const pad = (8 - ((PREFIX + json.length) % 8)) % 8;
  if (pad) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const prefix = Buffer.alloc(PREFIX);
  MAGIC.copy(prefix);
  prefix.writeUInt32LE(json.length, MAGIC.length);
  return Buffer.concat([prefix, json, ...parts]);
}

/**
 * Parses and verifies an entry: the magic, a well-formed header naming
 * `expectedKey`, offsets that tile the payload exactly, sizes that match the
 * shapes, and the payload's SHA-256. Anything else is corrupt.
 * @throws FeatureCacheCorruptError
 */
export function decodeEntry(bytes: Uint8Array, expectedKey: string): RawTensor[] {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const corrupt = (why: string) => new FeatureCacheCorruptError(`feature cache entry for '${expectedKey}': ${why}`);
  if (buf.length < PREFIX || !buf.subarray(0, MAGIC.length).equals(MAGIC)) throw corrupt('not a feature cache entry (bad magic)');
  const headerLen = buf.readUInt32LE(MAGIC.length);
  if (PREFIX + headerLen > buf.length) throw corrupt(`header of ${headerLen} bytes runs past the end (${buf.length} bytes)`);
  let header: EntryHeader;
  try {
    header = JSON.parse(buf.subarray(PREFIX, PREFIX + headerLen).toString('utf8')) as EntryHeader;
  } catch (err) {
    throw corrupt(`unreadable header: ${(err as Error).message}`);
  }
  if (header?.v !== 1 || header.endian !== 'le' || !Array.isArray(header.tensors)) throw corrupt('unsupported header');
  if (header.key !== expectedKey) throw corrupt(`holds key '${String(header.key)}'`);
  const payload = buf.subarray(PREFIX + headerLen);
  if (payload.length !== header.payloadBytes) throw corrupt(`payload is ${payload.length} bytes; header says ${header.payloadBytes} (truncated?)`);
  let next = 0;
  for (const t of header.tensors) {
    const count = Array.isArray(t.shape) ? t.shape.reduce((a, b) => a * b, 1) : NaN;
    if (t.dtype !== 'float32' || t.offset !== next || t.bytes !== count * 4 || typeof t.name !== 'string') throw corrupt(`tensor '${String(t.name)}' is misdescribed`);
    next += t.bytes;
  }
  if (next !== payload.length) throw corrupt('tensors do not cover the payload');
  const digest = createHash('sha256').update(payload).digest('hex');
  if (digest !== header.sha256) throw corrupt(`payload digest ${digest} does not match ${String(header.sha256)}`);
  return header.tensors.map((t) => {
    // Copy out: the file buffer may be pooled or unaligned.
    const data = new Float32Array(t.bytes / 4);
    new Uint8Array(data.buffer).set(payload.subarray(t.offset, t.offset + t.bytes));
    return { name: t.name, shape: t.shape, data };
  });
}
