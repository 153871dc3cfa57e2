import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Coordinator, startDashboardServer, type RunningDashboard } from '../services/coordinator/src/index.js';
import { startNatsServer, type RunningNatsServer } from '../services/sweeper/src/nats-server.js';
import { launchChromium } from './helpers/chromium.js';
import { runOneTrial } from './helpers/fake-worker.js';

const spec = `
name: dashboard-browser
dataset: { kind: synthetic, classes: 3, perClass: 10 }
backbones: [tiny_cnn]
unfreeze: [0, 4]
learningRates: [0.01, 0.03]
dropouts: [0.1, 0.5]
maxParallel: 8
fuse: false
`;

describe('dashboard in a real headless Chromium', () => {
  let nats: RunningNatsServer;
  let nc: NatsConnection;
  let c: Coordinator;
  let dash: RunningDashboard;
  let browser: Browser;
  let sweepId: string;

  beforeAll(async () => {
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url });
    c = await Coordinator.start({ nc });
    dash = await startDashboardServer(c, { address: '127.0.0.1:0' });
    sweepId = (await c.submitSweep(spec)).sweepId;
    for (let i = 0; i < 3; i++) await runOneTrial(nc, c);
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await dash?.close();
    c?.close();
    await nc?.close();
    await nats?.stop();
  });

  it('loads a running sweep, updates the table live when a trial finishes, and renders the plots', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1800 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${dash.url}?sweep=${sweepId}`);
    await page.getByTestId('row').first().waitFor();
    expect(await page.getByTestId('sweep-status').textContent()).toBe('running');
    expect(await page.getByTestId('row-count').getAttribute('data-total')).toBe('8');
    const completedRows = () => page.locator('[data-testid=row] .status-completed').count();
    expect(await completedRows()).toBe(3);

    // A trial finishes while the page is open: the table follows without a reload.
    await runOneTrial(nc, c);
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=row] .status-completed').length === 4, null, { timeout: 10_000 });

    // Plots: SVGs have marks, the learning-curve canvas has drawn pixels.
    await page.locator('#parallel path').first().waitFor();
    expect(await page.locator('#parallel path').count()).toBeGreaterThanOrEqual(3);
    expect(await page.getByTestId('per-backbone').locator('[data-testid=bar]').count()).toBe(1);
    expect(await page.locator('#pareto circle').count()).toBeGreaterThanOrEqual(3);
    await page.getByTestId('pareto-front').waitFor({ state: 'attached' });
    expect(await page.getByTestId('confusion').locator('[data-testid=cm-cell]').count()).toBe(9);
    const inked = await page.evaluate(() => {
      const canvas = document.getElementById('curves') as HTMLCanvasElement;
      const data = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
      let n = 0;
      for (let i = 3; i < data.length; i += 4) if (data[i] > 0) n++;
      return n;
    });
    expect(inked).toBeGreaterThan(500);

    // Feature maps: the coordinator computes the grid for the sweep's backbone and one of its images.
    await page.waitForFunction(() => (document.getElementById('fm-layer') as HTMLSelectElement).options.length > 5, null, { timeout: 30_000 });
    await page.selectOption('#fm-layer', 'block_1_expand_relu');
    await page.waitForFunction(() => {
      const img = document.getElementById('fm-img') as HTMLImageElement;
      return img.complete && img.naturalWidth > 100 && img.src.includes('block_1_expand_relu');
    }, null, { timeout: 30_000 });

    // Selecting a row plots that trial's curves.
    await page.getByTestId('row').nth(1).click();
    await page.waitForFunction(() => document.getElementById('curves-legend')!.textContent!.includes('solid: validation'));

    const dir = mkdtempSync(join(tmpdir(), 'tlsweep-shot-'));
    await page.screenshot({ path: join(dir, 'dashboard.png'), fullPage: true });
    expect(errors).toEqual([]);
    await page.close();
  });

  it('scrolls a large leaderboard with only the visible rows in the DOM', async () => {
    const big = await c.submitSweep(spec.replace('dashboard-browser', 'dashboard-big').replace('learningRates: [0.01, 0.03]', `learningRates: [${Array.from({ length: 100 }, (_, i) => (i + 1) / 1000).join(', ')}]`).replace('maxParallel: 8', 'maxParallel: 1'));
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(`${dash.url}?sweep=${big.sweepId}`);
    await page.getByTestId('row').first().waitFor();
    expect(await page.getByTestId('row-count').getAttribute('data-total')).toBe('400');
    const domRows = await page.getByTestId('row').count();
    expect(domRows).toBeLessThan(60);
    await page.locator('#table-viewport').evaluate((el) => { el.scrollTop = el.scrollHeight; });
    await page.waitForFunction(() => [...document.querySelectorAll('[data-testid=row] span:first-child')].some((s) => s.textContent === '400'));
    await page.close();
  });
});
