/**
 * Maintenance blocks the jobs that change a node, not the ones that only read or that are the
 * operator's own hand on it: a verify (or exec) of a set with one node cordoned starts on the
 * whole set; an upgrade of the same set is still refused, naming the node.
 */
import { expect } from 'chai';
import { useEtcd, expectReject } from '../helpers';
import { Harness } from '../reconcile/harness';

describe('jobs: maintenance does not block verify and exec (real etcd)', function () {
  this.timeout(60_000);
  const etcd = useEtcd('maintenance-reads');
  let h: Harness;

  beforeEach(async () => {
    h = await new Harness(etcd.client).start();
    await h.withGroup();
    const applied = { group: 'worker', appliedConfig: 'base@1', state: 'Commissioned' as const, labels: { role: 'web' } };
    await h.putNode({ id: 'n1', ...applied });
    await h.putNode({ id: 'n2', ...applied, maintenance: true });
  });
  afterEach(async () => {
    await h.stop();
  });

  it('verify of a selected set with one node in maintenance starts on every node', async () => {
    const job = await h.startJob({ kind: 'verify', labelSelector: 'role=web' });
    expect([...job.record.nodeIds].sort()).to.deep.equal(['n1', 'n2']);
  });

  it('exec on a node in maintenance starts', async () => {
    const job = await h.startJob({ kind: 'exec', nodeIds: ['n2'], argv: ['true'] });
    expect(job.record.nodeIds).to.deep.equal(['n2']);
  });

  it('an upgrade of the same set is still refused, naming the node in maintenance', async () => {
    const err = await expectReject(h.startJob({ kind: 'upgrade', labelSelector: 'role=web', group: 'worker' }));
    expect(err.message).to.match(/n2 is in maintenance/);
  });
});
