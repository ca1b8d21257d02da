/** Pause, resume and canary as pure decisions, by table: which request changes what, and what is refused. */
import { expect } from 'chai';
import {
  checkCanary, MAX_CANARY_SOAK_MS, pauseChange, planCanaryBatches, resumeChange, soakFailure, soakUntil, type JobRecord, type JobState,
} from '../../coordinator/jobs';
import { FailedPreconditionError, InvalidArgumentError } from '../../shared';

function job(state: JobState, batches: number, currentBatch = 0): JobRecord {
  return {
    id: 'j-1', kind: 'upgrade', state, targets: { group: 'g' }, nodeIds: [], variables: {}, strategy: 'rolling', batch: '1', maxFailures: 0,
    dryRun: false, force: false, batches: Array.from({ length: batches }, (_, i) => [`n${i + 1}`]), currentBatch, message: '',
    createdAt: '', requestedBy: 'test', claimed: true,
  };
}

describe('jobs: pause, resume and canary (pure)', () => {
  describe('pause', () => {
    // [state, batches, currentBatch, outcome: the next state, 'no-op', or the refusal's words]
    const table: [JobState, number, number, string][] = [
      ['Running', 3, 0, 'Pausing'],
      ['Running', 3, 1, 'Pausing'],
      ['Running', 3, 2, 'is running its last batch (3 of 3)'],
      ['Running', 1, 0, 'runs all its nodes in one batch'],
      ['Pausing', 3, 0, 'no-op'],
      ['Paused', 3, 1, 'no-op'],
      ['Pending', 3, 0, 'has not started yet'],
      ['Cancelling', 3, 0, 'is being cancelled'],
      ['Succeeded', 3, 2, 'has already finished (Succeeded)'],
      ['Cancelled', 3, 1, 'has already finished (Cancelled)'],
    ];
    for (const [state, batches, current, want] of table) {
      it(`${state}, batch ${current + 1} of ${batches} → ${want}`, () => {
        const j = job(state, batches, current);
        if (want === 'no-op') expect(pauseChange(j, '')).to.equal(undefined);
        else if (/^[A-Z]/.test(want)) {
          const c = pauseChange(j, 'look at the dashboards');
          expect(c?.next.state).to.equal(want);
          expect(c?.message).to.equal('pause requested: look at the dashboards');
        } else expect(() => pauseChange(j, '')).to.throw(FailedPreconditionError, want);
      });
    }
  });

  describe('resume', () => {
    const table: [JobState, string][] = [
      ['Paused', 'Running'], ['Pausing', 'Running'], ['Running', 'no-op'], ['Pending', 'no-op'],
      ['Cancelling', 'is being cancelled'], ['Failed', 'has already finished (Failed)'], ['Succeeded', 'has already finished (Succeeded)'],
    ];
    for (const [state, want] of table) {
      it(`${state} → ${want}`, () => {
        const j = job(state, 3, 1);
        if (want === 'no-op') expect(resumeChange(j)).to.equal(undefined);
        else if (/^[A-Z]/.test(want)) {
          const c = resumeChange(j);
          expect(c?.next.state).to.equal(want);
          expect(c?.next.currentBatch, 'resume does not move the batch').to.equal(1);
        } else expect(() => resumeChange(j)).to.throw(FailedPreconditionError, want);
      });
    }
  });

  describe('canary batches', () => {
    const ids = ['a', 'b', 'c', 'd', 'e'];
    // [canary, strategy, batch, batches]
    const table: [number, 'rolling' | 'all-at-once', number, string[][]][] = [
      [1, 'all-at-once', 1, [['a'], ['b', 'c', 'd', 'e']]],
      [2, 'all-at-once', 1, [['a', 'b'], ['c', 'd', 'e']]],
      [1, 'rolling', 2, [['a'], ['b', 'c'], ['d', 'e']]],
      [3, 'rolling', 1, [['a', 'b', 'c'], ['d'], ['e']]],
      [0, 'rolling', 2, [['a', 'b'], ['c', 'd'], ['e']]],
    ];
    for (const [canary, type, size, want] of table) {
      it(`canary ${canary}, ${type} ${size} → ${JSON.stringify(want)}`, () => {
        expect(planCanaryBatches(ids, canary, { type, batch: { kind: 'count', value: size } })).to.deep.equal(want);
      });
    }
  });

  describe('canary flags', () => {
    const ok = { canary: 1, canarySoakMs: 0, dryRun: false };
    const table: [string, Parameters<typeof checkCanary>[1], string | undefined][] = [
      ['upgrade', ok, undefined],
      ['commission', { ...ok, canarySoakMs: 600_000 }, undefined],
      ['commission', { ...ok, canarySoakMs: MAX_CANARY_SOAK_MS }, undefined],
      ['upgrade', { ...ok, canarySoakMs: MAX_CANARY_SOAK_MS + 1 }, 'longer than the 24h allowed'],
      ['upgrade', { ...ok, canary: 0, canarySoakMs: 1000 }, '--canary-soak needs --canary N'],
      ['decommission', ok, '--canary applies to commission and upgrade'],
      ['verify', ok, 'a verify job has no canary'],
      ['upgrade', { ...ok, dryRun: true }, 'does not apply to a dry run'],
      ['verify', { canary: 0, canarySoakMs: 0, dryRun: true }, undefined],
    ];
    for (const [kind, req, refusal] of table) {
      it(`${kind} ${JSON.stringify(req)} → ${refusal ?? 'accepted'}`, () => {
        if (refusal === undefined) checkCanary(kind, req);
        else expect(() => checkCanary(kind, req)).to.throw(InvalidArgumentError, refusal);
      });
    }
  });

  describe('canary soak', () => {
    it('a verify that failed (probe or drift) fails the canary, naming the cause; one that succeeded passes', () => {
      const out = { report: null, appliedDigest: '', output: '' };
      expect(soakFailure({ ...out, outcome: 'succeeded', error: '' })).to.equal(undefined);
      expect(soakFailure({ ...out, outcome: 'failed', error: 'verify probe svc-active failed: inactive' })).to.equal('canary soak: verify probe svc-active failed: inactive');
      expect(soakFailure({ ...out, outcome: 'timed_out', error: '' })).to.equal('canary soak: verify timed_out');
    });
    it('the end of the soak is written once: a new leader keeps the recorded moment', () => {
      const now = Date.parse('2026-12-02T06:00:00Z');
      expect(soakUntil(undefined, now, 600_000)).to.equal('2026-12-02T06:10:00.000Z');
      expect(soakUntil('2026-12-02T06:05:00.000Z', now, 600_000)).to.equal('2026-12-02T06:05:00.000Z');
      expect(soakUntil('garbage', now, 60_000)).to.equal('2026-12-02T06:01:00.000Z');
    });
  });
});
