import { describe, expect, it } from 'vitest';
import { EngineBenchConfigError, loadEngineBenchConfig } from '../bench/engine/config.js';

describe('bench:engine config', () => {
  it('runs as many host processes as torch gets threads unless told otherwise', () => {
    expect(loadEngineBenchConfig([], {})).toMatchObject({ sizes: [96, 224], batch: 16, torchThreads: 2, hostProcesses: 2 });
    expect(loadEngineBenchConfig(['--threads', '4'], {})).toMatchObject({ torchThreads: 4, hostProcesses: 4 });
    expect(loadEngineBenchConfig(['--host-processes', '0'], {})).toMatchObject({ hostProcesses: 0 });
    expect(loadEngineBenchConfig([], { BENCH_ENGINE_HOST_PROCESSES: '3' })).toMatchObject({ hostProcesses: 3 });
  });

  it('names the flag or variable and what is allowed for a bad value', () => {
    expect(() => loadEngineBenchConfig(['--host-processes', '-1'], {})).toThrow(EngineBenchConfigError);
    expect(() => loadEngineBenchConfig(['--host-processes', 'two'], {})).toThrow(/--host-processes must be an integer >= 0; got 'two'/);
    expect(() => loadEngineBenchConfig([], { BENCH_ENGINE_HOST_PROCESSES: '1.5' })).toThrow(/BENCH_ENGINE_HOST_PROCESSES must be an integer >= 0/);
    expect(() => loadEngineBenchConfig(['--processes', '2'], {})).toThrow(/unknown or incomplete argument '--processes'.*--host-processes <value>/);
  });
});
