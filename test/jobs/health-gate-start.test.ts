/**
 * What StartJob records of a health gate and a rollback policy (real etcd, the real JobStarter):
 * the job's own gate, the group's default soak when the job names none, the upgrade default
 * `on-failure`, and refusals that store nothing.
 */
import { expect } from 'chai';
import { expectReject, useEtcd } from '../helpers';
import { checkGroup } from '../../shared/group';
import { parseClusterFile } from '../../shared/cluster-file';
import { Harness } from '../reconcile/harness';

describe('jobs: health gate and rollback policy at StartJob (real etcd)', function () {
  this.timeout(60_000);
  const etcd = useEtcd('health-gate-start');
  let h: Harness;

  beforeEach(async () => {
    h = await new Harness(etcd.client).start();
  });
  afterEach(async () => {
    await h.stop();
  });

  async function nodes(soakMs?: number): Promise<void> {
    await h.withGroup(soakMs ? { soakMs } : {});
    for (const id of ['n1', 'n2']) await h.putNode({ id, group: 'worker', appliedConfig: 'base@1', state: 'Commissioned' });
  }

  it('an upgrade records its gate and rolls back on failure by default', async () => {
    await nodes();
    const job = await h.startJob({ kind: 'upgrade', group: 'worker', soakMs: 30_000, probes: [{ id: '', tcp: '127.0.0.1:80', http: '', expectStatus: 0, command: '', expectExit: 0, timeoutMs: 0 }] });
    expect(job.record.health).to.deep.equal({ soakMs: 30_000, intervalMs: 10_000, probes: [{ id: 'probe-1', tcp: '127.0.0.1:80' }] });
    expect(job.record.rollback).to.equal('on-failure');
  });

  it('a job that names no soak takes its group\'s; one that names it keeps its own', async () => {
    await nodes(120_000);
    const byGroup = await h.startJob({ kind: 'upgrade', nodeIds: ['n1'] });
    expect(byGroup.record.health?.soakMs).to.equal(120_000);
    const own = await h.startJob({ kind: 'upgrade', nodeIds: ['n2'], soakMs: 5000, rollback: 'never' });
    expect(own.record.health?.soakMs).to.equal(5000);
    expect(own.record.rollback, 'never is not stored').to.equal(undefined);
  });

  it('refuses a bad gate or policy, storing nothing', async () => {
    await nodes();
    const before = (await h.jobs.list()).length;
    expect((await expectReject(h.startJob({ kind: 'upgrade', group: 'worker', soakMs: 7_200_000 }))).message).to.match(/soak: must be between 0 and 60 min/);
    expect((await expectReject(h.startJob({ kind: 'verify', group: 'worker', soakMs: 1000 }))).message).to.match(/verify: a health gate .* is for commission and upgrade/);
    expect((await expectReject(h.startJob({ kind: 'upgrade', group: 'worker', rollback: 'maybe' }))).message).to.match(/rollback: "maybe" is not one of on-failure, never/);
    expect((await h.jobs.list()).length).to.equal(before);
    const n1 = await h.node('n1');
    expect(n1.currentJob, 'no claim left behind').to.equal(undefined);
  });

  it('a secret extra var must be one of the job\'s extra vars: `constructor` is refused with INVALID_ARGUMENT, storing nothing (not looked up on Object.prototype)', async () => {
    await nodes();
    const before = (await h.jobs.list()).length;
    for (const name of ['constructor', 'toString']) {
      const err = await expectReject(h.startJob({ kind: 'upgrade', group: 'worker', extraVarsJson: '{"a":"1"}', secretExtraVars: [name] }));
      expect(err.message, name).to.match(new RegExp(`^secret extra var ${name} has no value`));
    }
    expect((await h.jobs.list()).length).to.equal(before);
  });

  it('the group soak is bounded, and a cluster file spells it `soak: 2m`', () => {
    expect(checkGroup({ name: 'w', bundle: 'b', version: '1', soakMs: 60_000 }).soakMs).to.equal(60_000);
    expect(() => checkGroup({ name: 'w', bundle: 'b', version: '1', soakMs: 3_600_001 })).to.throw(/soak: must be between 0 and 60 min/);
    const file = parseClusterFile('groups:\n  web:\n    bundle: web@1\n    soak: 2m\n');
    expect(file.groups[0].soakMs).to.equal(120_000);
  });
});
