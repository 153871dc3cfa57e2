import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Workers the tests start (in-process or spawned) keep their disk feature
 * cache in a temp folder of this run, not in the user's ~/.cache, and it is
 * removed afterwards.
 */
export default function setup(): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'tlsweep-test-features-'));
  process.env.TLSWEEP_FEATURE_CACHE_DIR = dir;
  return () => rmSync(dir, { recursive: true, force: true });
}
