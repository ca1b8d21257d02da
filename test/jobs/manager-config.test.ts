/**
 * The manager's settings act where they are read, without a restart: a job that names no
 * batch runs in the defaultBatch set in etcd (all at once by default); one that names its
 * batch or strategy keeps it; exec is not batched by it.
 */
import { expect } from 'chai';
import { useEtcd } from '../helpers';
import { Harness } from '../reconcile/harness';

describe('jobs: the manager\'s defaultBatch setting (real etcd)', function () {
  this.timeout(60_000);
  const etcd = useEtcd('manager-config');
  let h: Harness;

  beforeEach(async () => {
    h = await new Harness(etcd.client).start();
    await h.withGroup();
    for (const id of ['n1', 'n2', 'n3', 'n4']) await h.putNode({ id, group: 'worker', appliedConfig: 'base@1', state: 'Commissioned' });
  });
  afterEach(async () => {
    await h.stop();
  });

  const setting = (values: Record<string, string>): Promise<unknown> => etcd.client.put(h.ks.managerConfig()).value(JSON.stringify({ values })).exec();

  it('unset: a job without a batch runs all at once', async () => {
    const job = await h.startJob({ kind: 'verify', group: 'worker' });
    expect(job.record).to.deep.include({ strategy: 'all-at-once', batches: [['n1', 'n2', 'n3', 'n4']] });
  });

  it('defaultBatch=50%: a job without a batch is rolling in halves, read at the next start', async () => {
    await setting({ defaultBatch: '50%' });
    const job = await h.startJob({ kind: 'verify', group: 'worker' });
    expect(job.record).to.deep.include({ strategy: 'rolling', batch: '50%', batches: [['n1', 'n2'], ['n3', 'n4']] });
  });

  it('defaultBatch=1 does not override a job that names its strategy or batch, nor batch an exec', async () => {
    await setting({ defaultBatch: '1' });
    expect((await h.startJob({ kind: 'verify', nodeIds: ['n1', 'n2'], strategy: 'all-at-once' })).record.batches).to.deep.equal([['n1', 'n2']]);
    expect((await h.startJob({ kind: 'verify', nodeIds: ['n3', 'n4'], strategy: 'rolling', batch: '2' })).record.batches).to.deep.equal([['n3', 'n4']]);
    // The nodes above are held by those jobs: the exec gets nodes of its own.
    await h.putNode({ id: 'n5', group: 'worker', appliedConfig: 'base@1', state: 'Commissioned' });
    await h.putNode({ id: 'n6', group: 'worker', appliedConfig: 'base@1', state: 'Commissioned' });
    expect((await h.startJob({ kind: 'exec', nodeIds: ['n5', 'n6'], argv: ['true'] })).record.batches).to.deep.equal([['n5', 'n6']]);
  });
});
