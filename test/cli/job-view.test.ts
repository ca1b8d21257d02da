/**
 * `job describe`'s strategy line, by table: an all-at-once job has no batch size to print.
 */
import { expect } from 'chai';
import { describeJob, strategyText } from '../../cli/commands/job-view';
import type { Job__Output } from '../../generated/cluster/v1/Job';

function job(strategy: string, batch: string, nodes: number, batches: number): Job__Output {
  return {
    id: 'j1', kind: 'commission', state: 'Succeeded', group: 'g', bundle: 'b@1', strategy, batch, maxFailures: 0, dryRun: false, force: false,
    nodeIds: Array.from({ length: nodes }, (_, i) => `n${i + 1}`), batches, currentBatch: 0, counts: {}, message: '', createdAt: '', startedAt: '',
    finishedAt: '', requestedBy: '', revision: '', driftedNodes: [],
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
