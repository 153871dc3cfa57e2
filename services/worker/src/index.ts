export { loadConfig } from './config.js';
export type { WorkerConfig } from './config.js';
export { TrialError, toTrialError } from './errors.js';
export type { TrialErrorCode } from './errors.js';
export { Reporter } from './runner/reporter.js';
export type { ReporterOptions } from './runner/reporter.js';
export { TrialConsumer } from './runner/trial-consumer.js';
export type { TrialConsumerOptions } from './runner/trial-consumer.js';
export { runTrial } from './runner/run-trial.js';
