import type { Consumer, JsMsg } from '@nats-io/jetstream';
import type { TrialConfig } from '../../services/coordinator/src/index.js';

/**
 * The next queue message of `sweepId`, or null when none comes within
 * `expiresMs`. Tests in one file share a NATS server and its KV: a
 * coordinator that starts rebuilds the earlier tests' sweeps that were left
 * running, and re-publishes their units whose messages a test purged or
 * acked (reconcileLostMessages). Those arrive with delivery count 1 in the
 * middle of a test counting deliveries; they are terminated here so they do
 * not come back.
 *
 * The pull lasts 2.5 s by default, longer than the tests' 1 s ack wait: a
 * pull that expires just as the server redelivers (nats-server 2.9) can
 * lose that delivery (the next one then counts one more) or deliver it
 * twice with the same count (seen here: stream seq 1, count 1, twice).
 */
export async function nextOfSweep(consumer: Consumer, sweepId: string, expiresMs = 2500): Promise<JsMsg | null> {
  for (;;) {
    const m = await consumer.next({ expires: expiresMs });
    if (!m) return null;
    const task = m.json<{ config?: TrialConfig; configs?: TrialConfig[] }>();
    const configs = task.configs ?? (task.config ? [task.config] : []);
    if (configs.some((c) => c.sweepId === sweepId)) return m;
    m.term();
  }
}
