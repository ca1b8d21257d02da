/**
 * The pure decisions of a health-gated upgrade and its rollback, as tables: the gate's and the
 * policy's compile step (shared/health-gate.ts), when a job rolls back, in which order, what
 * each node record and the job end up as (coordinator/jobs/job-rollback.ts), and the job
 * state machine's new moves.
 */
import { expect } from 'chai';
import { FailedPreconditionError, InvalidArgumentError, type NodeRecord } from '../../shared';
import { compileHealthGate, HEALTH_LIMITS, probesFromFlags, rollbackPolicy, type HealthGateInput } from '../../shared/health-gate';
import { failedOutcome, type CommandOutcome } from '../../coordinator/jobs/job-outcome';
import { checkJobTransition, decodeJobNode, isActive, isFinished, type JobNodeRecord } from '../../coordinator/jobs/job-record';
import {
  rollbackEnd, rollbackOrder, rollbackRefusal, rollbackStartChange, rolledBackNodeChange, rollsBack, type RollbackJob,
} from '../../coordinator/jobs/job-rollback';

function problem(input: HealthGateInput): string {
  try {
    compileHealthGate(input);
  } catch (err) {
    expect(err).to.be.instanceOf(InvalidArgumentError);
    return (err as Error).message;
  }
  return '';
}

describe('health gate: compile (bounded, every problem named)', () => {
  it('nothing asked: no gate', () => {
    expect(compileHealthGate({})).to.equal(undefined);
    expect(compileHealthGate({ soakMs: 0, intervalMs: 0, probes: [] })).to.equal(undefined);
  });

  // [input, the compiled gate's soak/interval/probe ids]
  const good: [string, HealthGateInput, { soakMs: number; intervalMs: number; ids: string[] }][] = [
    ['soak 30s, default interval 10s', { soakMs: 30_000 }, { soakMs: 30_000, intervalMs: 10_000, ids: [] }],
    ['soak 3s: interval the soak', { soakMs: 3000 }, { soakMs: 3000, intervalMs: 3000, ids: [] }],
    ['soak 500ms: interval at least 1s', { soakMs: 500 }, { soakMs: 500, intervalMs: 1000, ids: [] }],
    ['soak with interval', { soakMs: 60_000, intervalMs: 5000 }, { soakMs: 60_000, intervalMs: 5000, ids: [] }],
    ['probes only (once after the apply)', { probes: [{ tcp: '127.0.0.1:80' }] }, { soakMs: 0, intervalMs: 1000, ids: ['probe-1'] }],
    ['named probes of each kind', { soakMs: 1000, probes: [{ id: 't', tcp: '[::1]:8080' }, { id: 'h', http: 'http://127.0.0.1/h', expectStatus: 204 }, { id: 'c', command: 'true', expectExit: 3 }] }, { soakMs: 1000, intervalMs: 1000, ids: ['t', 'h', 'c'] }],
  ];
  for (const [name, input, want] of good) {
    it(`accepts ${name}`, () => {
      const g = compileHealthGate(input);
      expect(g && { soakMs: g.soakMs, intervalMs: g.intervalMs, ids: g.probes.map((p) => p.id) }).to.deep.equal(want);
    });
  }

  const bad: [string, HealthGateInput, RegExp][] = [
    ['a soak over an hour', { soakMs: HEALTH_LIMITS.maxSoakMs + 1 }, /soak: must be between 0 and 60 min/],
    ['a negative soak', { soakMs: -1 }, /soak: must be between/],
    ['an interval under 1s', { soakMs: 10_000, intervalMs: 10 }, /probe interval: must be between 1 s and 60 min/],
    ['an interval without a soak', { intervalMs: 5000 }, /probe interval: only with a soak time/],
    ['too many probes', { probes: Array.from({ length: 9 }, () => ({ tcp: '127.0.0.1:1' })) }, /probes: 9 given; a job takes at most 8/],
    ['a probe of no kind', { probes: [{ id: 'x' }] }, /probe 1: give exactly one of tcp, http, command \(got none\)/],
    ['a probe of two kinds', { probes: [{ tcp: '127.0.0.1:1', command: 'true' }] }, /probe 1: give exactly one of tcp, http, command \(got tcp and command\)/],
    ['tcp without a port', { probes: [{ tcp: 'localhost' }] }, /probe 1: tcp wants HOST:PORT/],
    ['tcp port 70000', { probes: [{ tcp: 'localhost:70000' }] }, /probe 1: tcp wants HOST:PORT with a port 1-65535/],
    ['http that is not a URL', { probes: [{ http: 'localhost/healthz' }] }, /probe 1: http wants an http:\/\/ or https:\/\/ URL/],
    ['a status on a tcp probe', { probes: [{ tcp: '127.0.0.1:1', expectStatus: 200 }] }, /expect status is for http probes/],
    ['status 42', { probes: [{ http: 'http://x/', expectStatus: 42 }] }, /expect status is for http probes, 100-599/],
    ['a probe timeout over 60s', { probes: [{ command: 'true', timeoutMs: 61_000 }] }, /timeout must be at most 60 s/],
    ['a 2000-character command', { probes: [{ command: 'x'.repeat(2000) }] }, /command is 2000 characters; at most 1024/],
  ];
  for (const [name, input, want] of bad) {
    it(`refuses ${name}`, () => expect(problem(input)).to.match(want));
  }

  it('every problem at once, none of them echoing the input', () => {
    const msg = problem({ soakMs: -5, probes: [{ tcp: 'nope-secret' }, { http: 'also-secret' }] });
    expect(msg.split('; ')).to.have.length(3);
    expect(msg).to.not.include('secret');
  });

  it('clusterctl flags to probes: ids by kind and position, URL=STATUS split', () => {
    expect(probesFromFlags({ tcp: ['127.0.0.1:80'], http: ['http://h/x=204', 'http://h/y'], command: ['test -f /x'] })).to.deep.equal([
      { id: 'tcp-1', tcp: '127.0.0.1:80' },
      { id: 'http-1', http: 'http://h/x', expectStatus: 204 },
      { id: 'http-2', http: 'http://h/y' },
      { id: 'command-1', command: 'test -f /x' },
    ]);
  });
});

describe('rollback policy', () => {
  // [text, kind, dryRun, policy or error]
  const rows: [string, string, boolean, string | RegExp][] = [
    ['', 'upgrade', false, 'on-failure'],
    ['never', 'upgrade', false, 'never'],
    ['on-failure', 'upgrade', false, 'on-failure'],
    ['', 'upgrade', true, 'never'],
    ['', 'commission', false, 'never'],
    ['never', 'commission', false, 'never'],
    ['on-failure', 'commission', false, /on-failure is for upgrades \(a commission has no previous version/],
    ['on-failure', 'upgrade', true, /a dry run changes nothing/],
    ['sometimes', 'upgrade', false, /rollback: "sometimes" is not one of on-failure, never/],
  ];
  for (const [text, kind, dryRun, want] of rows) {
    it(`${JSON.stringify(text)} for ${kind}${dryRun ? ' (dry run)' : ''} → ${String(want)}`, () => {
      if (typeof want === 'string') expect(rollbackPolicy(text, kind, dryRun)).to.equal(want);
      else expect(() => rollbackPolicy(text, kind, dryRun)).to.throw(InvalidArgumentError, want);
    });
  }

  // [kind, dryRun, policy, stopped, cancelled, rolls back]
  const when: [string, boolean, 'on-failure' | 'never' | undefined, boolean, boolean, boolean][] = [
    ['upgrade', false, 'on-failure', true, false, true],
    ['upgrade', false, 'on-failure', false, false, false],
    ['upgrade', false, 'on-failure', true, true, false],
    ['upgrade', false, 'never', true, false, false],
    ['upgrade', false, undefined, true, false, false],
    ['upgrade', true, 'on-failure', true, false, false],
    ['commission', false, 'on-failure', true, false, false],
  ];
  for (const [kind, dryRun, rollback, stopped, cancelled, want] of when) {
    it(`rollsBack: ${kind}${dryRun ? ' dry run' : ''} ${rollback ?? '(none)'} stopped=${stopped} cancelled=${cancelled} → ${want}`, () => {
      expect(rollsBack({ kind: kind as 'upgrade', dryRun, ...(rollback ? { rollback } : {}) }, stopped, cancelled)).to.equal(want);
    });
  }
});

const JOB: RollbackJob = { id: 'j1', kind: 'upgrade', dryRun: false, rollback: 'on-failure', nodeIds: ['a', 'b', 'c', 'd', 'e'], bundle: 'web@2' };

function jn(nodeId: string, batch: number, state: JobNodeRecord['state'], finishedAt?: string, rollback?: JobNodeRecord['rollback']): JobNodeRecord {
  return { nodeId, batch, state, attempt: 1, units: [], ...(finishedAt ? { finishedAt } : {}), ...(rollback ? { rollback } : {}), previous: { state: 'Commissioned', bundle: 'web@1' } };
}

describe('rollback order: every node the job ran on, newest first', () => {
  it('later batch first, then the last to finish; pending/skipped/cancelled nodes left out', () => {
    const nodes = new Map([
      jn('a', 0, 'succeeded', '2026-12-02T10:00:01Z'), jn('b', 0, 'succeeded', '2026-12-02T10:00:03Z'),
      jn('c', 1, 'failed', '2026-12-02T10:00:09Z'), jn('d', 1, 'cancelled', '2026-12-02T10:00:09Z'), jn('e', 2, 'skipped'),
    ].map((n) => [n.nodeId, n]));
    expect(rollbackOrder(JOB, nodes)).to.deep.equal(['c', 'b', 'a']);
  });

  it('a resumed rollback skips the nodes whose rollback ended and re-runs the one that was running', () => {
    const rb = (state: 'running' | 'succeeded' | 'failed'): JobNodeRecord['rollback'] => ({ state, commandId: 'x', bundle: 'web@1', startedAt: 't' });
    const nodes = new Map([
      jn('a', 0, 'succeeded', 't1'), jn('b', 0, 'succeeded', 't2', rb('running')), jn('c', 1, 'failed', 't3', rb('succeeded')),
    ].map((n) => [n.nodeId, n]));
    expect(rollbackOrder(JOB, nodes)).to.deep.equal(['b', 'a']);
  });

  it('previous and rollback survive the etcd round trip (a new leader reads them)', () => {
    const rec = jn('a', 0, 'succeeded', 't1', { state: 'running', commandId: 'j1/a/rollback', bundle: 'web@1', startedAt: 't' });
    expect(decodeJobNode('k', JSON.stringify(rec))).to.deep.equal(rec);
  });

  it('a node without a recorded previous version cannot be rolled back, and says why', () => {
    expect(rollbackRefusal(undefined)).to.match(/not recorded/);
    expect(rollbackRefusal({ state: 'Failed' })).to.match(/no bundle applied before the job/);
    expect(rollbackRefusal({ state: 'Commissioned', bundle: 'web@1' })).to.equal(undefined);
  });
});

const NODE: NodeRecord = {
  id: 'a', state: 'Upgraded', labels: {}, appliedConfig: 'web@2', desiredConfig: 'web@2', appliedDigest: 'd2', createdAt: 't', updatedAt: 't',
  stateChangedAt: 't', reachable: true, maintenance: false, connected: true,
  appliedInputs: { bundle: 'web@2', variables: { port: '81' }, facts: {} },
};
const PREVIOUS = { state: 'Commissioned' as const, bundle: 'web@1', inputs: { bundle: 'web@1', variables: { port: '80' }, facts: {} } };
const OK: CommandOutcome = { outcome: 'succeeded', error: '', report: null, appliedDigest: 'd1', output: '' };

describe('rollback: node records', () => {
  it('start: the node goes Upgrading under the job\'s claim, with a job.rollback event', () => {
    const c = rollbackStartChange(JOB, NODE, 'a', 'web@1');
    expect(c?.next.state).to.equal('Upgrading');
    expect(c?.next.currentJob).to.equal('j1');
    expect(c?.event).to.deep.include({ type: 'job.rollback', jobId: 'j1' });
    expect(rollbackStartChange(JOB, { ...NODE, state: 'Upgrading', currentJob: 'j1' }, 'a', 'web@1'), 'already there (resumed)').to.equal(undefined);
  });

  it('start: refused for a node another job holds now, or gone', () => {
    expect(() => rollbackStartChange(JOB, { ...NODE, currentJob: 'j9' }, 'a', 'web@1')).to.throw(FailedPreconditionError, /in job j9 now; not rolled back/);
    expect(() => rollbackStartChange(JOB, undefined, 'a', 'web@1')).to.throw(FailedPreconditionError, /no longer exists/);
  });

  // [previous state, outcome, node state after, lastError]
  const ends: [PreviousStateName, CommandOutcome, string, RegExp][] = [
    ['Commissioned', OK, 'Commissioned', /upgrade to web@2 rolled back to web@1 by job j1: stopped/],
    ['Upgraded', OK, 'Upgraded', /rolled back to web@1/],
    ['Failed', OK, 'Failed', /rolled back to web@1/],
    ['Discovered', OK, 'Commissioned', /rolled back to web@1/],
    ['Commissioned', failedOutcome('failed', 'unit release: disk full'), 'Failed', /rollback to web@1 failed \(job j1\): unit release: disk full/],
    ['Commissioned', failedOutcome('timed_out', ''), 'Failed', /rollback to web@1 failed \(job j1\): command timed_out/],
  ];
  for (const [before, r, after, lastError] of ends) {
    it(`end: previously ${before}, rollback ${r.outcome} → ${after}`, () => {
      const cur = { ...NODE, state: 'Upgrading' as const, currentJob: 'j1' };
      const c = rolledBackNodeChange(JOB, cur, { ...PREVIOUS, state: before }, r, 'stopped');
      expect(c?.next.state).to.equal(after);
      expect(c?.next.currentJob, 'claim released').to.equal(undefined);
      expect(c?.next.lastError).to.match(lastError);
      expect(c?.event.type).to.equal('job.rollback');
      if (r.outcome === 'succeeded') {
        expect(c?.next.appliedConfig).to.equal('web@1');
        expect(c?.next.desiredConfig).to.equal('web@1');
        expect(c?.next.appliedDigest).to.equal('d1');
        expect(c?.next.appliedInputs).to.deep.equal(PREVIOUS.inputs);
      } else {
        expect(c?.next.appliedConfig, 'unchanged: the agent says what it has').to.equal('web@2');
      }
    });
  }

  it('end: a node this rollback does not hold is not touched', () => {
    expect(rolledBackNodeChange(JOB, { ...NODE, currentJob: 'j9' }, PREVIOUS, OK, 'x')).to.equal(undefined);
    expect(rolledBackNodeChange(JOB, undefined, PREVIOUS, OK, 'x')).to.equal(undefined);
  });
});

type PreviousStateName = 'Commissioned' | 'Upgraded' | 'Failed' | 'Discovered';

describe('rollback: the job', () => {
  it('RolledBack when every node went back, Failed naming the ones that did not', () => {
    const rb = (state: 'succeeded' | 'failed'): JobNodeRecord['rollback'] => ({ state, commandId: 'x', bundle: 'web@1', startedAt: 't' });
    const all = new Map([jn('a', 0, 'succeeded', 't', rb('succeeded')), jn('b', 1, 'failed', 't', rb('succeeded')), jn('c', 2, 'skipped')].map((n) => [n.nodeId, n]));
    expect(rollbackEnd(JOB, all, 'stop')).to.deep.equal({ state: 'RolledBack', message: 'stop; rolled back 2 node(s) to their previous version' });
    const some = new Map([jn('a', 0, 'succeeded', 't', rb('failed')), jn('b', 1, 'failed', 't', rb('succeeded'))].map((n) => [n.nodeId, n]));
    expect(rollbackEnd(JOB, some, 'stop')).to.deep.equal({ state: 'Failed', message: 'stop; rollback failed on a (1 of 2 node(s) rolled back)' });
  });

  it('state machine: Running → RollingBack → RolledBack | Failed | Cancelling; RolledBack is final; RollingBack is active', () => {
    for (const to of ['RolledBack', 'Failed', 'Cancelling'] as const) expect(() => checkJobTransition('j1', 'RollingBack', to)).not.to.throw();
    expect(() => checkJobTransition('j1', 'Running', 'RollingBack')).not.to.throw();
    expect(() => checkJobTransition('j1', 'Pending', 'RollingBack')).to.throw(FailedPreconditionError);
    expect(() => checkJobTransition('j1', 'RollingBack', 'Succeeded')).to.throw(FailedPreconditionError);
    expect(isFinished('RolledBack')).to.equal(true);
    expect(isActive('RollingBack')).to.equal(true);
  });
});
