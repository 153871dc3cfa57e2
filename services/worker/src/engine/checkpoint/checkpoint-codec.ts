import { createHash } from 'node:crypto';
import type { TensorData, TrialCheckpoint } from './trial-checkpoint.js';

/**
 * Binary form of a TrialCheckpoint: the magic `TLSWCK01`, a little-endian
 * u32 header length, a JSON header (the checkpoint with every tensor
 * replaced by `{ $t: index, shape, dtype }` and non-finite numbers by
 * `{ $n: "NaN" | "Infinity" | "-Infinity" }`, the tensors' byte offsets, the
 * payload's SHA-256), then the tensors' raw little-endian bytes.
 */
const MAGIC = Buffer.from('TLSWCK01', 'ascii');

export class CheckpointFormatError extends Error {
  readonly code = 'CHECKPOINT_FORMAT';
  constructor(message: string) {
    super(message);
    this.name = 'CheckpointFormatError';
  }
}

const isTensorData = (x: unknown): x is TensorData =>
  typeof x === 'object' && x !== null && ((x as TensorData).values instanceof Float32Array || (x as TensorData).values instanceof Int32Array);

export function encodeCheckpoint(cp: TrialCheckpoint): Uint8Array {
  const chunks: Buffer[] = [];
  const offsets: Array<[number, number]> = [];
  let offset = 0;
  const header = JSON.stringify(cp, (_key, value: unknown) => {
    if (typeof value === 'number' && !Number.isFinite(value)) return { $n: String(value) };
    if (isTensorData(value)) {
      const bytes = Buffer.from(value.values.buffer, value.values.byteOffset, value.values.byteLength);
      chunks.push(bytes);
      offsets.push([offset, bytes.length]);
      offset += bytes.length;
      return { $t: offsets.length - 1, shape: value.shape, dtype: value.dtype };
    }
    return value;
  });
  const payload = Buffer.concat(chunks);
  const head = Buffer.from(JSON.stringify({ checkpoint: header, offsets, sha256: createHash('sha256').update(payload).digest('hex') }), 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32LE(head.length);
  return Buffer.concat([MAGIC, len, head, payload]);
}

export function decodeCheckpoint(bytes: Uint8Array): TrialCheckpoint {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < 12 || !buf.subarray(0, 8).equals(MAGIC)) throw new CheckpointFormatError('not a tlsweep checkpoint (bad magic)');
  const headLen = buf.readUInt32LE(8);
  if (12 + headLen > buf.length) throw new CheckpointFormatError('truncated header');
  let head: { checkpoint: string; offsets: Array<[number, number]>; sha256: string };
  try {
    head = JSON.parse(buf.subarray(12, 12 + headLen).toString('utf8'));
  } catch {
    throw new CheckpointFormatError('unreadable header');
  }
  const payload = buf.subarray(12 + headLen);
  if (createHash('sha256').update(payload).digest('hex') !== head.sha256) throw new CheckpointFormatError('payload digest mismatch (truncated or corrupt)');
  const cp = JSON.parse(head.checkpoint, (_key, value: unknown) => {
    if (typeof value !== 'object' || value === null) return value;
    const v = value as { $n?: string; $t?: number; shape?: number[]; dtype?: 'float32' | 'int32' };
    if (typeof v.$n === 'string') return Number(v.$n);
    if (typeof v.$t === 'number') {
      const [at, length] = head.offsets[v.$t] ?? [];
      if (at === undefined || at + length > payload.length) throw new CheckpointFormatError(`tensor ${v.$t} lies outside the payload`);
      // Copy: the typed array must be aligned and own its bytes.
      const copy = new Uint8Array(payload.subarray(at, at + length));
      const values = v.dtype === 'int32' ? new Int32Array(copy.buffer) : new Float32Array(copy.buffer);
      const size = (v.shape ?? []).reduce((a, b) => a * b, 1);
      if (values.length !== size) throw new CheckpointFormatError(`tensor ${v.$t} has ${values.length} values for shape [${v.shape}]`);
      return { shape: v.shape ?? [], dtype: v.dtype ?? 'float32', values } satisfies TensorData;
    }
    return value;
  }) as TrialCheckpoint;
  if (cp.v !== 1) throw new CheckpointFormatError(`unsupported checkpoint version ${String(cp.v)}`);
  return cp;
}
