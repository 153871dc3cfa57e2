import { describe, expect, it } from 'vitest';
import { LeaderboardServiceService, ReportServiceService, SweepServiceService } from '../proto/generated/tlsweep/v1/tlsweep.js';
import { METHOD_ROLES } from '../services/coordinator/src/grpc/auth.js';

describe('the role table', () => {
  it('names a role for every rpc the coordinator serves, and nothing else', () => {
    const served = [SweepServiceService, LeaderboardServiceService, ReportServiceService].flatMap((svc) => Object.values(svc).map((m) => m.path)).sort();
    // An rpc missing here would silently need an operator token (the default); a stale entry names nothing.
    expect(Object.keys(METHOD_ROLES).sort()).toEqual(served);
  });

  it('gives workers only the reports and the model announcement, and readers nothing that writes', () => {
    const byRole = (role: string) => Object.entries(METHOD_ROLES).filter(([, r]) => r === role).map(([path]) => path.split('/').pop()).sort();
    expect(byRole('worker')).toEqual(['ModelStored', 'Report', 'ReportEpoch', 'TrialFailed', 'TrialFinished', 'TrialStarted']);
    expect(byRole('operator')).toEqual(['CancelSweep', 'PushWeights', 'SubmitSweep']);
    for (const path of byRole('reader')) expect(path).toMatch(/^(Get|List|Watch|Query|Export)/);
  });
});
