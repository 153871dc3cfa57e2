/**
 * `npm run screenshot [-- --out file.png]`: runs a small real sweep on a local
 * cluster (examples/screenshot.yaml), opens the dashboard in headless
 * Chromium while it runs and when it is done, and saves a full-page PNG.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { TlsweepClient } from '../services/sweeper/src/client.js';
import { startLocalCluster } from '../services/sweeper/src/local-cluster.js';
import { launchChromium } from '../tests/helpers/chromium.js';

const { values } = parseArgs({ options: { out: { type: 'string', default: '.tlsweep/dashboard.png' }, spec: { type: 'string', default: 'examples/screenshot.yaml' } } });
const out = resolve(values.out!);
const cluster = await startLocalCluster({ workers: 2 });
try {
  if (!cluster.dashboardUrl) throw new Error('the coordinator started without a dashboard');
  const client = new TlsweepClient(cluster.coordinator);
  await client.ready();
  const sweep = await client.submit(readFileSync(values.spec!, 'utf8'));
  console.log(`sweep ${sweep.sweepId}: ${sweep.counts?.total} trials; dashboard ${cluster.dashboardUrl}?sweep=${sweep.sweepId}`);
  const browser = await launchChromium();
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1800 } });
    await page.goto(`${cluster.dashboardUrl}?sweep=${sweep.sweepId}`);
    // Wait for the sweep to end on the page itself: the status line is live.
    await page.waitForFunction(() => document.getElementById('sweep-status')?.dataset.status !== 'running', null, { timeout: 30 * 60_000, polling: 1000 });
    // Let the throttled plot refresh catch up with the last event.
    await page.waitForTimeout(3500);
    mkdirSync(dirname(out), { recursive: true });
    await page.screenshot({ path: out, fullPage: true });
    console.log(`saved ${out}`);
  } finally {
    await browser.close();
  }
  client.close();
} finally {
  await cluster.stop();
}
