/**
 * The pure decision of what a job does to a node (coordinator/jobs/job-outcome.ts), as tables:
 * every job kind × every way a command ends.
 */
import { expect } from 'chai';
import { FailedPreconditionError, type LifecycleState, type NodeRecord } from '../../shared';
import {
  CANCELLED_BY_OPERATOR, decideNodeOutcome, DONE_STATE, failedOutcome, finishedJobNode, finishedNodeChange, startedNodeChange, unitsWithReport,
  WORKING_STATE, type CommandOutcome, type OutcomeJob,
} from '../../coordinator/jobs/job-outcome';
import { JOB_KINDS, type JobKind, type JobNodeRecord } from '../../coordinator/jobs/job-record';
import { decodeCommandReport, type CommandReport } from '../../shared/command-report';

const VERIFY_DRIFT = decodeCommandReport({ mode: 'verify', ok: false, changed: ['conf'], units: [{ unitId: 'conf', state: 'changed' }] });
const VERIFY_CLEAN = decodeCommandReport({ mode: 'verify', ok: true });
const REBOOTED = 'agent of node n1 rebooted while the command ran (boot id b1 → b2); not re-sent';
const UNREACHABLE = 'agent of node n1 went unreachable mid-command and did not reconnect within 60 s';

interface OutcomeRow {
  name: string;
  result: CommandOutcome;
  cancelRequested: boolean;
  /** The job node's state and error for every kind but verify (verify: `verify` below, when it differs). */
  state: JobNodeRecord['state'];
  error?: string;
  verify?: { state: JobNodeRecord['state']; error?: string; drift?: CommandReport };
}

const OUTCOMES: OutcomeRow[] = [
  { name: 'succeeded', result: { outcome: 'succeeded', error: '', report: VERIFY_CLEAN, appliedDigest: 'd2', output: 'ok\n', exitCode: 0 }, cancelRequested: false, state: 'succeeded' },
  { name: 'failed (agent error)', result: { outcome: 'failed', error: 'unit conf: disk full', report: null, appliedDigest: '', output: '', exitCode: 3 }, cancelRequested: false, state: 'failed', error: 'unit conf: disk full' },
  { name: 'failed (no error text)', result: failedOutcome('failed', ''), cancelRequested: false, state: 'failed', error: 'command failed' },
  { name: 'timed out', result: { ...failedOutcome('timed_out', 'no result within 1000 ms'), exitCode: -1 }, cancelRequested: false, state: 'failed', error: 'no result within 1000 ms' },
  { name: 'cancelled by the operator', result: { ...failedOutcome('cancelled', 'stopped'), exitCode: -1 }, cancelRequested: true, state: 'cancelled', error: CANCELLED_BY_OPERATOR },
  { name: 'cancelled without a cancel request', result: failedOutcome('cancelled', 'agent shutting down'), cancelRequested: false, state: 'failed', error: 'agent shutting down' },
  { name: 'agent rebooted', result: failedOutcome('failed', REBOOTED), cancelRequested: false, state: 'failed', error: REBOOTED },
  { name: 'agent unreachable', result: failedOutcome('failed', UNREACHABLE), cancelRequested: false, state: 'failed', error: UNREACHABLE },
  {
    name: 'a report that does not decode', result: { outcome: 'succeeded', error: '', report: { ...VERIFY_CLEAN, mode: 'verified' }, appliedDigest: 'd2', output: 'ok\n', exitCode: 0 },
    cancelRequested: false, state: 'failed', error: 'the agent\'s command report is malformed: report.mode: must be one of apply, remove, verify, plan (got "verified")',
  },
  {
    name: 'verification ran and found drift', result: { outcome: 'failed', error: '1 unit drifted', report: VERIFY_DRIFT, appliedDigest: '', output: '' }, cancelRequested: false,
    state: 'failed', error: '1 unit drifted', verify: { state: 'succeeded', drift: VERIFY_DRIFT },
  },
];

/** The node record a successful (non-dry) job of each kind leaves, from NODE_BEFORE. */
interface KindRow {
  /** State the node is in while the job works on it (and before it, for kinds with none). */
  before: LifecycleState;
  succeeded: Partial<NodeRecord> & { state: LifecycleState };
  failedState: LifecycleState;
  /** Whether a failure writes lastError (exec: never). */
  lastError: boolean;
  /** Event type of the final write. */
  okEvent: string;
  failEvent: string;
}

const KINDS: Record<JobKind, KindRow> = {
  commission: {
    before: 'Commissioning', succeeded: { state: 'Commissioned', group: 'g', appliedConfig: 'web@2', desiredConfig: 'web@2', appliedDigest: 'd2' },
    failedState: 'Failed', lastError: true, okEvent: 'node.state', failEvent: 'node.state',
  },
  upgrade: {
    before: 'Upgrading', succeeded: { state: 'Upgraded', appliedConfig: 'web@2', desiredConfig: 'web@2', appliedDigest: 'd2' },
    failedState: 'Failed', lastError: true, okEvent: 'node.state', failEvent: 'node.state',
  },
  decommission: {
    before: 'Decommissioning', succeeded: { state: 'Decommissioned', appliedConfig: undefined, desiredConfig: undefined, appliedDigest: undefined },
    failedState: 'Failed', lastError: true, okEvent: 'node.state', failEvent: 'node.state',
  },
  verify: { before: 'Commissioned', succeeded: { state: 'Commissioned' }, failedState: 'Commissioned', lastError: true, okEvent: 'job.node', failEvent: 'job.node' },
  repair: {
    before: 'Commissioned', succeeded: { state: 'Commissioned', appliedConfig: 'web@2', desiredConfig: 'web@2', appliedDigest: 'd2' },
    failedState: 'Commissioned', lastError: true, okEvent: 'job.node', failEvent: 'job.node',
  },
  exec: { before: 'Commissioned', succeeded: { state: 'Commissioned', lastError: 'earlier' }, failedState: 'Commissioned', lastError: false, okEvent: 'job.node', failEvent: 'job.node' },
};

function nodeIn(state: LifecycleState): NodeRecord {
  return { id: 'n1', state, stateChangedAt: '2026-01-01T00:00:00.000Z', reachable: true, labels: {}, maintenance: false, connected: true, createdAt: '2026-01-01T00:00:00.000Z', updatedAt: '2026-01-01T00:00:00.000Z' };
}

function nodeBefore(state: LifecycleState): NodeRecord {
  return { ...nodeIn(state), currentJob: 'j1', appliedConfig: 'web@1', desiredConfig: 'web@1', appliedDigest: 'd1', lastError: 'earlier' };
}

const running: JobNodeRecord = { nodeId: 'n1', state: 'running', batch: 0, attempt: 1, commandId: 'j1/n1/1', units: [], output: 'progress\n' };

describe('job outcome: the lifecycle states of each kind', () => {
  const rows: [JobKind, LifecycleState | undefined, LifecycleState | undefined][] = [
    ['commission', 'Commissioning', 'Commissioned'], ['upgrade', 'Upgrading', 'Upgraded'], ['decommission', 'Decommissioning', 'Decommissioned'],
    ['verify', undefined, undefined], ['repair', undefined, undefined], ['exec', undefined, undefined],
  ];
  it('covers every kind', () => expect(rows.map((r) => r[0]).sort()).to.deep.equal([...JOB_KINDS].sort()));
  for (const [kind, working, done] of rows) {
    it(`${kind}: working ${working ?? '-'}, done ${done ?? '-'}`, () => {
      expect(WORKING_STATE[kind]).to.equal(working);
      expect(DONE_STATE[kind]).to.equal(done);
      const job: OutcomeJob = { id: 'j1', kind, dryRun: false };
      const change = startedNodeChange(job, nodeIn('Discovered'), 'n1');
      if (working) {
        expect(change?.next).to.deep.include({ state: working, currentJob: 'j1' });
        expect(change?.event).to.deep.equal({ type: 'node.state', jobId: 'j1', message: `${kind} started by job j1` });
        expect(startedNodeChange(job, nodeIn(working), 'n1'), 'already there').to.equal(undefined);
        expect(() => startedNodeChange(job, undefined, 'n1')).to.throw(FailedPreconditionError, 'node n1 no longer exists');
      } else {
        expect(change).to.equal(undefined);
      }
      expect(startedNodeChange({ ...job, dryRun: true }, nodeIn('Discovered'), 'n1'), 'dry run').to.equal(undefined);
    });
  }
});

describe('job outcome: every kind × every way a command ends', () => {
  for (const kind of JOB_KINDS) {
    const k = KINDS[kind];
    const job: OutcomeJob = { id: 'j1', kind, dryRun: false, ...(kind === 'commission' ? { group: 'g' } : {}) };
    for (const o of OUTCOMES) {
      it(`${kind} × ${o.name}`, () => {
        const want = kind === 'verify' && o.verify ? o.verify : { state: o.state, error: o.error };
        const d = decideNodeOutcome(job, o.result, o.cancelRequested);
        const rec = finishedJobNode(running, d, o.result, '2026-01-01T00:00:00.000Z');
        expect(rec.state).to.equal(want.state);
        expect(rec.error).to.equal(want.error);
        expect(rec.finishedAt).to.equal('2026-01-01T00:00:00.000Z');
        expect(rec.output).to.equal(o.result.output || 'progress\n');
        expect(rec.drift).to.deep.equal(kind === 'verify' && o.verify ? VERIFY_DRIFT : undefined);
        expect(rec.plan).to.equal(undefined);
        const exitCode = kind === 'exec' && o.result.outcome !== 'timed_out' && o.result.outcome !== 'cancelled' ? o.result.exitCode : undefined;
        expect(rec.exitCode).to.equal(exitCode);

        const change = finishedNodeChange(job, d, o.result, kind === 'exec' ? undefined : 'web@2', nodeBefore(k.before));
        expect(change, 'a node change').to.not.equal(undefined);
        const next = change?.next;
        expect(next?.currentJob, 'claim released').to.equal(undefined);
        if (want.state === 'succeeded') {
          for (const [field, value] of Object.entries(k.succeeded)) expect(next?.[field as keyof NodeRecord], field).to.equal(value);
          if (kind !== 'exec') expect(next?.lastError).to.equal(undefined);
          expect(change?.event.type).to.equal(k.okEvent);
        } else {
          // The operator's cancel leaves a *-ing node Cancelled, not Failed.
          expect(next?.state).to.equal(want.state === 'cancelled' && WORKING_STATE[kind] ? 'Cancelled' : k.failedState);
          expect(next?.appliedConfig, 'applied config kept').to.equal('web@1');
          const lastError = !k.lastError ? 'earlier' : want.state === 'cancelled' ? CANCELLED_BY_OPERATOR : `${kind} failed (job j1): ${want.error ?? ''}`;
          expect(next?.lastError).to.equal(lastError);
          if (kind === 'commission') expect(next?.group, 'a failed commission keeps its group').to.equal('g');
          expect(change?.event.type).to.equal(k.failEvent);
        }
      });
    }
  }

  it('exec leaves a node that another job claimed alone', () => {
    const job: OutcomeJob = { id: 'j1', kind: 'exec', dryRun: false };
    const r = OUTCOMES[0].result;
    expect(finishedNodeChange(job, decideNodeOutcome(job, r, false), r, undefined, { ...nodeBefore('Commissioned'), currentJob: 'j2' })).to.equal(undefined);
  });

  it('another job\'s claim survives a non-exec job finishing', () => {
    const job: OutcomeJob = { id: 'j1', kind: 'verify', dryRun: false };
    const r = OUTCOMES[0].result;
    expect(finishedNodeChange(job, decideNodeOutcome(job, r, false), r, 'web@1', { ...nodeBefore('Commissioned'), currentJob: 'j2' })?.next.currentJob).to.equal('j2');
  });

  it('the applied inputs: recorded by a successful commission, upgrade or repair, kept by verify and a failure, dropped by decommission', () => {
    const inputs = { bundle: 'web@2', variables: { listen: '7777' }, facts: {}, extraVars: ['listen'] };
    const before = { ...nodeBefore('Commissioned'), appliedInputs: { bundle: 'web@1', variables: { listen: '80' }, facts: {} } };
    const ok = OUTCOMES[0].result;
    const failed = OUTCOMES[1].result;
    const rows: [JobKind, LifecycleState, CommandOutcome, unknown][] = [
      ['commission', 'Commissioning', ok, inputs], ['upgrade', 'Upgrading', ok, inputs], ['repair', 'Commissioned', ok, inputs],
      ['verify', 'Commissioned', ok, before.appliedInputs], ['upgrade', 'Upgrading', failed, before.appliedInputs], ['decommission', 'Decommissioning', ok, undefined],
    ];
    for (const [kind, state, r, want] of rows) {
      const job: OutcomeJob = { id: 'j1', kind, dryRun: false, group: 'g' };
      const next = finishedNodeChange(job, decideNodeOutcome(job, r, false), r, 'web@2', { ...before, state }, inputs)?.next;
      expect(next?.appliedInputs, `${kind} ${r.outcome}`).to.deep.equal(want);
    }
  });

  it('a drift finding: cleared by a successful repair, commission, upgrade or decommission; kept by a failure and by verify (it records its own)', () => {
    const before = { ...nodeBefore('Commissioned'), driftSummary: 'conf changed', lastError: 'drift: conf changed' };
    const ok = OUTCOMES[0].result;
    const failed = OUTCOMES[1].result;
    const rows: [JobKind, LifecycleState, CommandOutcome, string | undefined][] = [
      ['repair', 'Commissioned', ok, undefined], ['commission', 'Commissioning', ok, undefined], ['upgrade', 'Upgrading', ok, undefined],
      ['decommission', 'Decommissioning', ok, undefined], ['repair', 'Commissioned', failed, 'conf changed'], ['verify', 'Commissioned', ok, 'conf changed'],
    ];
    for (const [kind, state, r, want] of rows) {
      const job: OutcomeJob = { id: 'j1', kind, dryRun: false, group: 'g' };
      const next = finishedNodeChange(job, decideNodeOutcome(job, r, false), r, 'web@2', { ...before, state })?.next;
      expect(next?.driftSummary, `${kind} ${r.outcome}`).to.equal(want);
    }
  });

  it('a successful apply on the boot the node is on verifies the node for that boot in the same write; a rebooted node, a failure, verify and decommission leave the verified boot alone', () => {
    const ok = OUTCOMES[0].result;
    const failed = OUTCOMES[1].result;
    // kind, state before, outcome, boot the command ran on, verified boot after
    const rows: [JobKind, LifecycleState, CommandOutcome, string | undefined, string | undefined][] = [
      ['commission', 'Commissioning', ok, 'b1', 'b1'], ['upgrade', 'Upgrading', ok, 'b1', 'b1'], ['repair', 'Commissioned', ok, 'b1', 'b1'],
      ['commission', 'Commissioning', ok, 'b0', 'b0-verified'], ['commission', 'Commissioning', ok, undefined, 'b0-verified'],
      ['commission', 'Commissioning', failed, 'b1', 'b0-verified'], ['verify', 'Commissioned', ok, 'b1', 'b0-verified'], ['decommission', 'Decommissioning', ok, 'b1', 'b0-verified'],
    ];
    for (const [kind, state, r, ranOn, want] of rows) {
      const job: OutcomeJob = { id: 'j1', kind, dryRun: false, group: 'g' };
      const before: NodeRecord = { ...nodeBefore(state), bootId: 'b1', verifiedBootId: 'b0-verified' };
      const change = finishedNodeChange(job, decideNodeOutcome(job, r, false), r, 'web@2', before, undefined, ranOn);
      expect(change?.next.verifiedBootId, `${kind} ${r.outcome} on ${ranOn ?? '(unknown boot)'}`).to.equal(want);
      if (want === 'b1') expect(change?.event.message).to.match(/verified on boot b1$/);
    }
    const dry: OutcomeJob = { id: 'j1', kind: 'commission', dryRun: true, group: 'g' };
    expect(finishedNodeChange(dry, decideNodeOutcome(dry, ok, false), ok, 'web@2', { ...nodeBefore('Discovered'), bootId: 'b1' }, undefined, 'b1')?.next.verifiedBootId).to.equal(undefined);
  });

  it('a vanished node is not written', () => {
    const job: OutcomeJob = { id: 'j1', kind: 'upgrade', dryRun: false };
    const r = OUTCOMES[0].result;
    expect(finishedNodeChange(job, decideNodeOutcome(job, r, false), r, 'web@2', undefined)).to.equal(undefined);
  });
});

describe('job outcome: dry runs plan and change nothing', () => {
  const plan = decodeCommandReport({ mode: 'plan', units: [{ unitId: 'conf', state: 'unchanged', action: 'create' }] });
  const rows: [string, CommandOutcome, JobNodeRecord['state'], string][] = [
    ['planned', { outcome: 'succeeded', error: '', report: plan, appliedDigest: 'd2', output: '' }, 'succeeded', 'dry run planned'],
    ['failed', { outcome: 'failed', error: 'no such package', report: plan, appliedDigest: '', output: '' }, 'failed', 'dry run failed: no such package'],
  ];
  for (const kind of JOB_KINDS.filter((x) => x !== 'exec')) {
    for (const [name, r, state, message] of rows) {
      it(`${kind} dry run ${name}`, () => {
        const job: OutcomeJob = { id: 'j1', kind, dryRun: true, group: 'g' };
        const d = decideNodeOutcome(job, r, false);
        const rec = finishedJobNode(running, d, r, 'now');
        expect(rec.state).to.equal(state);
        expect(rec.plan).to.deep.equal(plan);
        expect(rec.drift).to.equal(undefined);
        const before = nodeBefore('Discovered');
        const change = finishedNodeChange(job, d, r, 'web@2', before);
        const { currentJob: _c, ...unchanged } = before;
        expect(change?.next).to.deep.equal(unchanged);
        expect(change?.event).to.deep.equal({ type: 'job.node', jobId: 'j1', message });
      });
    }
  }
});

describe('job outcome: the finished record\'s units take the result\'s report over live progress', () => {
  const apply = decodeCommandReport({
    mode: 'apply', ok: true, changed: ['b'],
    units: [{ unitId: 'a', state: 'unchanged', summary: '' }, { unitId: 'b', state: 'changed', summary: 'content differs' }, { unitId: 'c', state: 'removed', summary: 'dropped from web@1' }],
  });
  const rows: [string, JobNodeRecord['units'], CommandReport | undefined, JobNodeRecord['units']][] = [
    // The stream was down while b and c ran: progress stopped at b "running", c never showed.
    ['progress cut short by a reconnect', [{ unitId: 'a', status: 'unchanged', message: '' }, { unitId: 'b', status: 'running', message: '' }], apply,
      [{ unitId: 'a', status: 'unchanged', message: '' }, { unitId: 'b', status: 'changed', message: 'content differs' }, { unitId: 'c', status: 'removed', message: 'dropped from web@1' }]],
    ['no progress at all', [], apply,
      [{ unitId: 'a', status: 'unchanged', message: '' }, { unitId: 'b', status: 'changed', message: 'content differs' }, { unitId: 'c', status: 'removed', message: 'dropped from web@1' }]],
    ['complete progress: the same list', [{ unitId: 'a', status: 'unchanged', message: '' }, { unitId: 'b', status: 'changed', message: 'content differs' }, { unitId: 'c', status: 'removed', message: 'dropped from web@1' }], apply,
      [{ unitId: 'a', status: 'unchanged', message: '' }, { unitId: 'b', status: 'changed', message: 'content differs' }, { unitId: 'c', status: 'removed', message: 'dropped from web@1' }]],
    ['a plan reads "planned"', [{ unitId: 'conf', status: 'running', message: '' }], decodeCommandReport({ mode: 'plan', units: [{ unitId: 'conf', state: 'changed', summary: 'would create' }] }),
      [{ unitId: 'conf', status: 'planned', message: 'would create' }]],
    ['a failed unit keeps its error', [{ unitId: 'pkg', status: 'running', message: '' }], decodeCommandReport({ mode: 'apply', units: [{ unitId: 'pkg', state: 'failed', error: 'no such package' }] }),
      [{ unitId: 'pkg', status: 'failed', message: 'no such package' }]],
    // A verify's report names only what drifted: the rest stays as progress showed it.
    ['a verify names only the drift', [{ unitId: 'a', status: 'unchanged', message: '' }, { unitId: 'conf', status: 'changed', message: '' }], VERIFY_DRIFT,
      [{ unitId: 'a', status: 'unchanged', message: '' }, { unitId: 'conf', status: 'changed', message: '' }]],
    // A leftover of an earlier version named like a current unit: listed on its own, not over it.
    ['a second unit of one id is listed apart', [{ unitId: 'conf', status: 'unchanged', message: '' }],
      decodeCommandReport({ mode: 'verify', units: [{ unitId: 'conf', state: 'changed', summary: 'content differs' }, { unitId: 'conf', state: 'changed', summary: 'dropped from web@1, still on the node (removal pending)' }] }),
      [{ unitId: 'conf', status: 'changed', message: 'content differs' }, { unitId: 'conf', status: 'changed', message: 'dropped from web@1, still on the node (removal pending)' }]],
    ['no report (exec, timeout): progress as it was', [{ unitId: 'a', status: 'running', message: 'x' }], undefined, [{ unitId: 'a', status: 'running', message: 'x' }]],
  ];
  for (const [name, live, report, want] of rows) {
    it(name, () => {
      expect(unitsWithReport(live, report)).to.deep.equal(want);
      const r: CommandOutcome = { outcome: 'succeeded', error: '', report: report ?? null, appliedDigest: 'd', output: '' };
      const job: OutcomeJob = { id: 'j1', kind: 'upgrade', dryRun: false };
      expect(finishedJobNode({ ...running, units: live }, decideNodeOutcome(job, r, false), r, 'now').units).to.deep.equal(want);
    });
  }
});
