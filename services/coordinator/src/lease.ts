import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { COORDINATOR_BUCKET } from './queue/names.js';

/**
 * Per-attempt lease tokens. TrialStarted answers a worker with
 * HMAC-SHA256(secret, trialId|attempt); every later report of that attempt
 * must carry it. Derived rather than stored: a retried TrialStarted (its
 * answer was lost) gets the same token, a restarted coordinator verifies
 * without any per-trial state, and a newer attempt's token differs, so an
 * older attempt holder cannot report as the new one.
 */
export class LeaseSigner {
  constructor(private readonly secret: Buffer) {
    if (secret.length < 16) throw new Error('lease secret: must be at least 16 bytes');
  }

  /** The token of (trial, attempt): 43 base64url characters. */
  token(trialId: string, attempt: number): string {
    return createHmac('sha256', this.secret).update(`tlsweep-lease-v1|${trialId}|${attempt}`).digest('base64url');
  }

  /** Constant-time check of a presented token. */
  verify(trialId: string, attempt: number, presented: string): boolean {
    const want = Buffer.from(this.token(trialId, attempt));
    const got = Buffer.from(presented ?? '');
    return got.length === want.length && timingSafeEqual(got, want);
  }
}

const SECRET_KEY = 'lease-secret';

/**
 * The coordinator's lease secret: `configured` (TLSWEEP_LEASE_SECRET) when
 * given, else a random 32 bytes created once in KV bucket
 * `tlsweep-coordinator`, so every coordinator run of this NATS account
 * verifies the tokens the previous one handed out.
 */
export async function loadLeaseSigner(nc: NatsConnection, opts: { configured?: string | null; replicas?: number } = {}): Promise<LeaseSigner> {
  if (opts.configured) return new LeaseSigner(Buffer.from(opts.configured, 'utf8'));
  const kv = await new Kvm(jetstream(nc)).create(COORDINATOR_BUCKET, { history: 1, replicas: opts.replicas ?? 1 });
  const existing = await kv.get(SECRET_KEY);
  if (existing && existing.operation === 'PUT' && existing.value.length > 0) return new LeaseSigner(Buffer.from(existing.value));
  try {
    // create() fails if another coordinator got there first; then use theirs.
    await kv.create(SECRET_KEY, randomBytes(32));
  } catch {
    /* lost the race */
  }
  const e = await kv.get(SECRET_KEY);
  if (!e || e.value.length === 0) throw new Error(`lease secret: could not read ${COORDINATOR_BUCKET}/${SECRET_KEY}`);
  return new LeaseSigner(Buffer.from(e.value));
}
