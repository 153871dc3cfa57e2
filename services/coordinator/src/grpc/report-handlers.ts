import type { Ack, Decision, ReportBatchRequest, ReportBatchResponse, ReportEpochRequest, ReportResult, TrialFailedRequest, TrialFinishedRequest, TrialStartedRequest } from '../../../../proto/generated/tlsweep/v1/tlsweep.js';
import type { Coordinator } from '../coordinator.js';
import { InvalidArgumentError, toGrpcStatus } from '../errors.js';
import { earlyStopFromPb, epochFromPb, testMetricsFromPb } from './convert.js';

/** Items per Report call: enough for every trial of a few fused units, small enough to answer in one go. */
export const MAX_REPORT_BATCH = 512;

/**
 * ReportService's handlers, shared by the one-report rpcs and the batched
 * `Report`: a batched item goes through exactly the checks its own call
 * would (the lease of every report after TrialStarted, the fields).
 */
export interface ReportHandlers {
  trialStarted(r: TrialStartedRequest): Promise<Decision>;
  reportEpoch(r: ReportEpochRequest): Promise<Decision>;
  trialFinished(r: TrialFinishedRequest): Promise<Ack>;
  trialFailed(r: TrialFailedRequest): Promise<Ack>;
  report(r: ReportBatchRequest): Promise<ReportBatchResponse>;
  /** Checks a report's lease token (also ModelStored's); returns its trial id. */
  leased(r: { trialId: string; attempt: number; leaseToken: string }): string;
}

function required(field: string, v: string): string {
  if (!v) throw new InvalidArgumentError([{ field, message: 'required' }], 'invalid request');
  return v;
}

export function reportHandlers(c: Coordinator): ReportHandlers {
  // Every report after TrialStarted must carry that attempt's lease token; it is checked before anything is applied.
  const leased = (r: { trialId: string; attempt: number; leaseToken: string }): string => {
    const trialId = required('trial_id', r.trialId);
    c.checkLease(trialId, r.attempt, r.leaseToken);
    return trialId;
  };
  const h: Omit<ReportHandlers, 'report' | 'leased'> = {
    async trialStarted(r) {
      const trialId = required('trial_id', r.trialId);
      // JetStream counts deliveries from 1; 0 would read as "never started".
      if (r.attempt < 1) throw new InvalidArgumentError([{ field: 'attempt', message: 'must be >= 1 (the JetStream delivery count of the trial message)' }], 'invalid report');
      const d = await c.trialStarted({ ...r, trialId });
      return { action: d.action, reason: d.reason, leaseToken: d.leaseToken ?? '' };
    },
    async reportEpoch(r) {
      const trialId = leased(r);
      const d = await c.reportEpoch({ trialId, attempt: r.attempt, metrics: epochFromPb(r.metrics) });
      return { action: d.action, reason: d.reason, leaseToken: '' };
    },
    async trialFinished(r) {
      const trialId = leased(r);
      return c.trialFinished({
        ...r,
        trialId,
        testMetrics: testMetricsFromPb(r.testMetrics),
        phaseSeconds: r.phaseSeconds ?? null,
        earlyStops: r.earlyStops.map(earlyStopFromPb),
      });
    },
    async trialFailed(r) {
      return { ...(await c.trialFailed({ ...r, trialId: leased(r) })), keepModel: false };
    },
  };
  return {
    ...h,
    leased: (r) => leased(r),
    async report(req) {
      if (req.items.length > MAX_REPORT_BATCH) {
        throw new InvalidArgumentError([{ field: 'items', message: `at most ${MAX_REPORT_BATCH} reports per call; got ${req.items.length}` }], 'invalid report batch');
      }
      // All items start at once: the coordinator's per-trial lock queues them in item order, so
      // reports of one trial apply in order while different trials' writes overlap.
      const results = await Promise.all(req.items.map(async (item, i): Promise<ReportResult> => {
        const ok = { code: 0, details: '', decision: undefined, ack: undefined };
        try {
          const set = [item.started, item.epoch, item.finished, item.failed].filter((x) => x !== undefined).length;
          if (set !== 1) throw new InvalidArgumentError([{ field: `items[${i}]`, message: `exactly one of started, epoch, finished, failed must be set; got ${set}` }], 'invalid report batch');
          if (item.started) return { ...ok, decision: await h.trialStarted(item.started) };
          if (item.epoch) return { ...ok, decision: await h.reportEpoch(item.epoch) };
          if (item.finished) return { ...ok, ack: await h.trialFinished(item.finished) };
          return { ...ok, ack: await h.trialFailed(item.failed!) };
        } catch (err) {
          const s = toGrpcStatus(err);
          return { code: s.code, details: s.details, decision: undefined, ack: undefined };
        }
      }));
      return { results };
    },
  };
}
