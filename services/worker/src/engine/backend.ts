import * as tf from '@tensorflow/tfjs';
import { registerFastCpuGradientKernels } from './cpu-kernels.js';
import { BackendUnavailableError, EngineConfigError } from './errors.js';

/** A tfjs backend the engine knows how to start, fastest first. */
export type BackendName = 'tensorflow' | 'wasm' | 'cpu';

/** Which backend runs the trials, and what was tried on the way. */
export interface BackendSelection {
  /** The tfjs backend now active (`tf.getBackend()`). */
  name: string;
  /** Every candidate tried, in order; `error` says why a candidate was skipped. */
  tried: Array<{ name: string; error?: string }>;
}

export const BACKEND_ORDER: readonly BackendName[] = ['tensorflow', 'wasm', 'cpu'];

let wasmGradientKernels: string[] | null = null;

function describe(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    const firstLine = err.message.split('\n')[0];
    return code ? `${code}: ${firstLine}` : firstLine;
  }
  return String(err);
}

async function activate(name: string): Promise<void> {
  // setBackend resolves false (rather than throwing) when initialisation fails.
  if (!(await tf.setBackend(name))) throw new Error(`tf.setBackend('${name}') returned false`);
  await tf.ready();
}

async function startTensorflow(): Promise<void> {
  // The native bindings register the 'tensorflow' backend on import. The GPU
  // build is an optional dependency that is usually absent; fall back to the
  // CPU build before giving up on native TensorFlow.
  const errors: string[] = [];
  for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    try {
      await import(pkg);
      await activate('tensorflow');
      return;
    } catch (err) {
      errors.push(`${pkg}: ${describe(err)}`);
    }
  }
  throw new Error(errors.join('; '));
}

async function startWasm(): Promise<void> {
  await import('@tensorflow/tfjs-backend-wasm');
  // The stock wasm backend lacks the convolution gradients fine-tuning needs;
  // without them a trial would fail half-way, so wasm counts as unavailable.
  // Loaded lazily: workers on other backends never need it.
  const kernels = await import('./wasm-kernels/index.js');
  if (wasmGradientKernels === null) {
    // Returns only what this call registered; remember the first answer.
    wasmGradientKernels = kernels.registerWasmGradientKernels();
    // Stock kernels stay for every case these do not speed up.
    kernels.registerWasmFastPaths();
  }
  await activate('wasm');
}

async function startCpu(): Promise<void> {
  registerFastCpuGradientKernels();
  await activate('cpu');
}

async function start(name: BackendName): Promise<void> {
  switch (name) {
    case 'tensorflow':
      return startTensorflow();
    case 'wasm':
      return startWasm();
    case 'cpu':
      return startCpu();
  }
}

/**
 * Starts the fastest available tfjs backend: native TensorFlow
 * (`@tensorflow/tfjs-node-gpu`, then `@tensorflow/tfjs-node`), then wasm (with
 * the project's gradient kernels registered), then cpu (with faster filter
 * gradients, see cpu-kernels.ts).
 *
 * @param preferred Start only this backend; throws {@link BackendUnavailableError}
 *   if it cannot be started.
 */
export async function selectBackend(preferred?: BackendName): Promise<BackendSelection> {
  if (preferred !== undefined && !BACKEND_ORDER.includes(preferred)) {
    throw new EngineConfigError(
      `unknown backend '${String(preferred)}'; expected one of ${BACKEND_ORDER.join(', ')}`,
    );
  }
  const candidates = preferred ? [preferred] : BACKEND_ORDER;
  const tried: Array<{ name: string; error?: string }> = [];
  for (const name of candidates) {
    try {
      await start(name);
      tried.push({ name });
      return { name: tf.getBackend(), tried };
    } catch (err) {
      tried.push({ name, error: describe(err) });
    }
  }
  const detail = tried.map((t) => `${t.name} (${t.error})`).join(', ');
  throw new BackendUnavailableError(
    preferred ? `backend '${preferred}' is unavailable: ${detail}` : `no tfjs backend could be started: ${detail}`,
    tried,
  );
}

/** Names of the wasm gradient kernels {@link selectBackend} registered, or null before wasm was chosen. */
export function registeredWasmGradientKernels(): readonly string[] | null {
  return wasmGradientKernels;
}
