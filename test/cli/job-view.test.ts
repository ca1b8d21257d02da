/**
 * `job describe`'s strategy line, by table: an all-at-once job has no batch size to print; its
 * health gate and rollback lines and table, and a RolledBack job's exit code.
 */
import { expect } from 'chai';
import { EXIT } from '../../cli/command';
import { describeJob, healthText, jobExitCode, strategyText } from '../../cli/commands/job-view';
import type { Job__Output } from '../../generated/cluster/v1/Job';
import type { JobDetail__Output } from '../../generated/cluster/v1/JobDetail';
import type { JobNode__Output } from '../../generated/cluster/v1/JobNode';

function job(strategy: string, batch: string, nodes: number, batches: number): Job__Output {
  return {
    id: 'j1', kind: 'commission', state: 'Succeeded', group: 'g', bundle: 'b@1', strategy, batch, maxFailures: 0, dryRun: false, force: false,
    nodeIds: Array.from({ length: nodes }, (_, i) => `n${i + 1}`), batches, currentBatch: 0, counts: {}, message: '', createdAt: '', startedAt: '',
    finishedAt: '', requestedBy: '', revision: '', driftedNodes: [], canary: 0, canarySoakMs: 0, canarySoakUntil: '',
    soakMs: 0, probeIntervalMs: 0, probes: [], rollback: '',
  };
}

describe('cli job view: strategy', () => {
  // [strategy, stored batch, nodes, batches, printed]
  const rows: [string, string, number, number, string][] = [
    ['all-at-once', '1', 20, 1, 'all-at-once (20 node(s) in one batch)'],
    ['all-at-once', '1', 1, 1, 'all-at-once (1 node(s) in one batch)'],
    ['rolling', '5', 20, 4, 'rolling batch 5, 4 batch(es)'],
    ['rolling', '25%', 8, 4, 'rolling batch 25%, 4 batch(es)'],
  ];
  for (const [strategy, batch, nodes, batches, want] of rows) {
    it(`${strategy} batch ${batch} over ${nodes} → ${want}`, () => {
      expect(strategyText(job(strategy, batch, nodes, batches))).to.equal(want);
    });
  }

  it('job describe of an all-at-once job of 20 does not say "batch 1"', () => {
    const text = describeJob({ job: job('all-at-once', '1', 20, 1), nodes: [] }, Date.now());
    expect(text).to.match(/^Strategy: +all-at-once \(20 node\(s\) in one batch\), max failures 0$/m);
    expect(text).not.to.contain('batch 1');
  });
});

describe('cli job view: health gate and rollback', () => {
  const node = (nodeId: string, over: Partial<JobNode__Output>): JobNode__Output => ({
    nodeId, batch: 0, state: 'succeeded', commandId: '', startedAt: '', finishedAt: '', error: '', output: '', units: [], exitCode: 0, hasExitCode: false,
    plan: null, drift: null, previousState: '', previousBundle: '', rollbackState: '', rollbackError: '', rollbackFinishedAt: '', ...over,
  });

  // [soak, interval, probes, printed]
  const rows: [number, number, Job__Output['probes'], string][] = [
    [0, 0, [], '-'],
    [30_000, 10_000, [], 'soak 30s, probes every 10s: bundle verify probes'],
    [0, 1000, [{ id: 't', tcp: '127.0.0.1:80', http: '', expectStatus: 0, command: '', expectExit: 0, timeoutMs: 0 }], 'probes once after the apply: bundle verify probes + tcp 127.0.0.1:80'],
    [1500, 1000, [{ id: 'h', tcp: '', http: 'http://x/h', expectStatus: 204, command: '', expectExit: 0, timeoutMs: 0 }, { id: 'c', tcp: '', http: '', expectStatus: 0, command: 'true', expectExit: 3, timeoutMs: 0 }],
      'soak 1500ms, probes every 1s: bundle verify probes + http http://x/h=204 + command "true" (exit 3)'],
  ];
  for (const [soakMs, probeIntervalMs, probes, want] of rows) {
    it(`gate ${want}`, () => expect(healthText({ soakMs, probeIntervalMs, probes })).to.equal(want));
  }

  it('a RolledBack job exits 1 (the upgrade did not happen) and describe lists the rollback in the order it ran', () => {
    const j: Job__Output = { ...job('rolling', '1', 3, 3), kind: 'upgrade', state: 'RolledBack', soakMs: 8000, probeIntervalMs: 1000, rollback: 'on-failure' };
    const d: JobDetail__Output = {
      job: j,
      nodes: [
        node('n1', { previousBundle: 'web@1', previousState: 'Upgraded', rollbackState: 'succeeded', rollbackFinishedAt: '2026-12-02T10:00:09Z' }),
        node('n2', { batch: 1, state: 'failed', previousBundle: 'web@1', previousState: 'Commissioned', rollbackState: 'failed', rollbackError: 'unit x: boom', rollbackFinishedAt: '2026-12-02T10:00:05Z' }),
        node('n3', { batch: 2, state: 'skipped' }),
      ],
    };
    expect(jobExitCode(d)).to.equal(EXIT.error);
    const page = describeJob(d, Date.parse('2026-12-02T10:01:00Z'));
    expect(page).to.match(/^Health gate: +soak 8s, probes every 1s: bundle verify probes$/m);
    expect(page).to.match(/^Rollback: +on-failure$/m);
    expect(page).to.match(/^Rolled back \(newest first\):\n +NODE +BACK TO +STATE +FINISHED +ERROR\n +n2 +web@1 \(Commissioned\) +failed +2026-12-02T10:00:05Z +unit x: boom\n +n1 +web@1 \(Upgraded\) +succeeded/m);
    expect(page).to.not.match(/n3 +web@1/);
  });
});
