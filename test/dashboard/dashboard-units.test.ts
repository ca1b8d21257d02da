/**
 * The dashboard's pure parts, by tables: a job's progress overall, per batch and of its rollback
 * from its nodes (or from the counts of a listed job), whether it is active (by the coordinator's
 * own job states), a node's tile, the --listen parser and which addresses
 * count as loopback. The server, the feed and the page are tested together in a real browser
 * (dashboard-browser.test.ts).
 */
import { expect } from 'chai';
import type { Job__Output } from '../../generated/cluster/v1/Job';
import type { JobNode__Output } from '../../generated/cluster/v1/JobNode';
import { jobPageOf, jobSummaryOf, tileOf } from '../../cli/dashboard/dashboard-feed';
import { isActive, JOB_STATES } from '../../coordinator/jobs/job-record';
import { checkListenHost, isLoopbackHost } from '../../cli/dashboard/dashboard-server';
import { parseListen } from '../../cli/commands/dashboard';
import { InvalidArgumentError } from '../../shared/errors';

function job(over: Partial<Job__Output> = {}): Job__Output {
  return {
    id: 'j-1', kind: 'commission', state: 'Running', group: 'worker', bundle: 'demo@1', strategy: 'rolling', batch: '2', maxFailures: 0,
    dryRun: false, force: false, nodeIds: ['a', 'b', 'c', 'd', 'e'], batches: 3, currentBatch: 2, counts: {}, message: '', createdAt: '2026-12-01T00:00:00Z',
    startedAt: '', finishedAt: '', requestedBy: 'user:admin', revision: '7', driftedNodes: [], canary: 0, canarySoakMs: 0, canarySoakUntil: '',
    soakMs: 0, probeIntervalMs: 0, probes: [], rollback: '', ...over,
  };
}

function jobNode(nodeId: string, batch: number, state: string): JobNode__Output {
  return {
    nodeId, batch, state, commandId: '', startedAt: '', finishedAt: '', error: '', output: '', units: [], exitCode: 0, hasExitCode: false, plan: null, drift: null,
    previousState: '', previousBundle: '', rollbackState: '', rollbackError: '', rollbackFinishedAt: '',
  };
}

describe('dashboard: pure parts', () => {
  it('job progress per batch and overall, from the job nodes', () => {
    const s = jobSummaryOf(job(), [
      jobNode('a', 1, 'succeeded'), jobNode('b', 1, 'failed'),
      jobNode('c', 2, 'running'), jobNode('d', 2, 'succeeded'),
      jobNode('e', 3, 'pending'),
    ]);
    expect({ total: s.total, done: s.done, failed: s.failed, running: s.running }).to.deep.equal({ total: 5, done: 3, failed: 1, running: 1 });
    expect(s.perBatch).to.deep.equal([
      { batch: 1, total: 2, done: 2, failed: 1, running: 0 },
      { batch: 2, total: 2, done: 1, failed: 0, running: 1 },
      { batch: 3, total: 1, done: 0, failed: 0, running: 0 },
    ]);
  });

  it('a listed job (no nodes) takes its progress from the counts by node state', () => {
    const s = jobSummaryOf(job({ counts: { succeeded: 2, skipped: 1, failed: 1, running: 1 } }), undefined);
    expect({ total: s.total, done: s.done, failed: s.failed, running: s.running, perBatch: s.perBatch }).to.deep.equal({ total: 5, done: 4, failed: 1, running: 1, perBatch: [] });
    expect(s.rollback).to.equal(null);
  });

  it('whether a job is active comes from the coordinator\'s job states (every one, the rollback and pause states too); an unknown state is not', () => {
    const active = Object.fromEntries(JOB_STATES.map((state) => [state, jobSummaryOf(job({ state }), undefined).active]));
    expect(active).to.deep.equal(Object.fromEntries(JOB_STATES.map((state) => [state, isActive(state)])));
    expect(active).to.include({ RollingBack: true, Paused: true, Pausing: true, RolledBack: false, Cancelled: false });
    expect(jobSummaryOf(job({ state: 'Exploded' }), undefined).active).to.equal(false);
  });

  it('a rolling-back job counts its nodes\' rollbacks; the job page carries each node\'s', () => {
    const rb = (n: JobNode__Output, rollbackState: string, rollbackError = ''): JobNode__Output => ({ ...n, previousBundle: 'demo@1', rollbackState, rollbackError });
    const nodes = [
      rb(jobNode('a', 1, 'succeeded'), 'succeeded'), rb(jobNode('b', 1, 'succeeded'), 'failed', 'apply failed'),
      rb(jobNode('c', 2, 'failed'), 'running'), jobNode('d', 3, 'skipped'),
    ];
    const s = jobSummaryOf(job({ kind: 'upgrade', state: 'RollingBack', nodeIds: ['a', 'b', 'c', 'd'] }), nodes);
    expect(s.active).to.equal(true);
    expect(s.rollback).to.deep.equal({ total: 3, done: 2, failed: 1, running: 1 });
    expect(jobSummaryOf(job(), [jobNode('a', 1, 'succeeded')]).rollback).to.equal(null);
    const page = jobPageOf({ job: job({ kind: 'upgrade', state: 'RollingBack' }), nodes });
    expect(page.nodes.map((n) => [n.nodeId, n.rollbackState, n.previousBundle, n.rollbackError])).to.deep.equal([
      ['a', 'succeeded', 'demo@1', ''], ['b', 'failed', 'demo@1', 'apply failed'], ['c', 'running', 'demo@1', ''], ['d', '', '', ''],
    ]);
  });

  it('a tile carries the drift summary, the facts it shows and a copy of the labels', () => {
    const labels = { rack: 'r1' };
    const t = tileOf({
      id: 'n1', state: 'Commissioned', reachable: false, unreachableSince: '', labels, group: 'worker', maintenance: true, maintenanceReason: 'disk', agentVersion: '',
      bootId: '', address: '', facts: { hostname: 'h1', primaryIp: '10.0.0.1' } as NonNullable<Parameters<typeof tileOf>[0]['facts']>, createdAt: '', updatedAt: '', lastSeenAt: '', lastError: '',
      desiredConfig: '', appliedConfig: '', appliedDigest: '', currentJob: 'j-1', revision: '', connectedAt: '', connected: false, stateChangedAt: '', driftSummary: '1 of 2 units drifted',
      outOfDate: false, outOfDateReasons: [], appliedVariables: {}, appliedExtraVars: [], preRegisteredBy: '', preRegistrations: [], unreachableSignal: '',
    });
    expect(t).to.deep.equal({
      id: 'n1', state: 'Commissioned', reachable: false, connected: false, maintenance: true, drift: '1 of 2 units drifted', group: 'worker',
      labels: { rack: 'r1' }, hostname: 'h1', ip: '10.0.0.1', job: 'j-1', lastError: '',
    });
    expect(t.labels).to.not.equal(labels);
  });

  const listens: [string, { host: string; port: number } | RegExp][] = [
    ['127.0.0.1:8001', { host: '127.0.0.1', port: 8001 }],
    ['localhost:0', { host: 'localhost', port: 0 }],
    ['[::1]:9000', { host: '::1', port: 9000 }],
    ['127.0.0.1', /is not HOST:PORT/],
    ['127.0.0.1:70000', /is not HOST:PORT/],
    [':8001', /is not HOST:PORT/],
  ];
  for (const [text, want] of listens) {
    it(`--listen ${text}`, () => {
      if (want instanceof RegExp) expect(() => parseListen(text)).to.throw(InvalidArgumentError, want);
      else expect(parseListen(text)).to.deep.equal(want);
    });
  }

  const hosts: [string, boolean][] = [
    ['127.0.0.1', true], ['127.3.4.5', true], ['::1', true], ['[::1]', true], ['localhost', true],
    ['0.0.0.0', false], ['::', false], ['10.0.0.5', false], ['example.com', false], ['128.0.0.1', false],
  ];
  for (const [host, loopback] of hosts) {
    it(`${host} is ${loopback ? '' : 'not '}loopback${loopback ? '' : ': refused unless allowed'}`, () => {
      expect(isLoopbackHost(host)).to.equal(loopback);
      if (loopback) expect(() => checkListenHost(host, false)).to.not.throw();
      else expect(() => checkListenHost(host, false)).to.throw(InvalidArgumentError, /--allow-non-loopback/);
      expect(() => checkListenHost(host, true)).to.not.throw();
    });
  }
});
