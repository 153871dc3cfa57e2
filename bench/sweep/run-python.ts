import { spawn, spawnSync } from 'node:child_process';

/** What a python script printed and how it ended. */
export interface PythonRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** The last stdout line parsed as JSON (null when it is not JSON). */
  result: unknown;
}

/**
 * Runs `python script args…`, streaming its stderr lines to `onStderr`
 * (progress), and parses the last stdout line as JSON.
 */
export function runPython(python: string, script: string, args: string[], onStderr: (line: string) => void = () => {}): Promise<PythonRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(python, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let pending = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => {
      const text = c.toString('utf8');
      stderr += text;
      pending += text;
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        onStderr(pending.slice(0, nl));
        pending = pending.slice(nl + 1);
      }
    });
    child.once('error', reject);
    child.once('close', (code) => {
      const last = stdout.trim().split('\n').pop() ?? '';
      let result: unknown = null;
      try {
        result = JSON.parse(last);
      } catch {
        /* not JSON: the caller reports stderr */
      }
      resolve({ code, stdout, stderr, result });
    });
  });
}

/** Null when `python` imports every module; otherwise why not (missing interpreter or module). */
export function pythonMissing(python: string, modules: readonly string[]): string | null {
  const r = spawnSync(python, ['-c', `import ${modules.join(', ')}`], { encoding: 'utf8', timeout: 60_000 });
  if (r.error) return `${python}: ${r.error.message}`;
  if (r.status !== 0) return `${python} cannot import ${modules.join(', ')}: ${(r.stderr || '').trim().split('\n').pop()}`;
  return null;
}
