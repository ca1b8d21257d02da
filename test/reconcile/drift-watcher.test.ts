/**
 * Reload and drift: the pure decisions by table, and the watcher against a real etcd with the
 * jobs engine — a new boot id starts a verify job; a finished verify job's drift is recorded as
 * node.drift and on the record; the repair policy starts a repair job.
 *
 * The verify job's outcome is written here the way the job runner records an agent's VERIFY
 * result (job state + per-node record with the agent's report): the end-to-end path with a
 * real agent changing a file under its sandbox root is left to the integration suite.
 */
import { expect } from 'chai';
import type { Etcd3 } from 'etcd3';
import { EtcdServer, waitFor } from '../helpers';
import { jobRequest } from '../../coordinator/reconcile/job-request';
import { DriftWatcher, driftOf, driftOfReport, nodePutMayNeedVerify, planReverify } from '../../coordinator/reconcile/drift-watcher';
import { ManualClock, type LifecycleState, type NodeRecord } from '../../shared';
import { decodeCommandReport, decodeDriftDetail } from '../../shared/command-report';
import { Harness, logger, until } from './harness';

function node(id: string, state: LifecycleState, over: Partial<NodeRecord> = {}): NodeRecord {
  return { id, state, stateChangedAt: '', reachable: true, labels: {}, maintenance: false, connected: true, createdAt: '', updatedAt: '', group: 'w', bootId: 'b2', ...over };
}

const DRIFT = decodeCommandReport({ mode: 'verify', ok: false, changed: ['motd'], units: [{ unitId: 'motd', state: 'changed', action: 'update', summary: 'update /etc/motd: content 1→2 lines' }] });

describe('drift watcher: decisions (tables)', () => {
  it('plans reverify on a new boot id and a baseline for never-verified nodes', () => {
    const nodes = [
      node('a', 'Commissioned', { verifiedBootId: 'b1' }),
      node('b', 'Upgraded'),
      node('c', 'Commissioned', { verifiedBootId: 'b2' }),
      node('d', 'Commissioned', { verifiedBootId: 'b1', maintenance: true }),
      node('e', 'Commissioned', { verifiedBootId: 'b1', connected: false }),
      node('f', 'Commissioned', { verifiedBootId: 'b1', currentJob: 'live' }),
      node('g', 'Commissioning', { verifiedBootId: 'b1' }),
      node('h', 'Commissioned', { verifiedBootId: 'b1', group: undefined }),
    ];
    expect(planReverify(nodes, new Set(['live']))).to.deep.equal([
      { kind: 'reverify', nodeId: 'a', group: 'w', bootId: 'b2', reason: 'new boot id (b1 → b2)' },
      { kind: 'baseline', nodeId: 'b', bootId: 'b2' },
    ]);
  });

  it('asks for a pass on a node put only when the record as written may need a verify or a baseline (unreadable: asked)', () => {
    const put = (n: NodeRecord): boolean => nodePutMayNeedVerify(`/c/nodes/${n.id}`, JSON.stringify(n));
    expect(put(node('a', 'Commissioned', { verifiedBootId: 'b1' })), 'new boot').to.equal(true);
    expect(put(node('b', 'Commissioned')), 'never verified').to.equal(true);
    expect(put(node('c', 'Commissioned', { verifiedBootId: 'b2' })), 'verified on this boot').to.equal(false);
    expect(put(node('g', 'Commissioning')), 'in a job').to.equal(false);
    expect(put(node('e', 'Commissioned', { connected: false })), 'no stream').to.equal(false);
    expect(nodePutMayNeedVerify('/c/nodes/x', '{not json')).to.equal(true);
    expect(nodePutMayNeedVerify('/c/nodes/x', JSON.stringify({ id: 'x', state: 'Bogus' }))).to.equal(true);
  });

  it('reads drift from the verify report', () => {
    expect(driftOf({ state: 'failed', drift: DRIFT })).to.equal('motd: update /etc/motd: content 1→2 lines');
    expect(driftOf({ state: 'succeeded', drift: decodeCommandReport({ mode: 'verify', ok: true }) })).to.equal('');
    expect(driftOf({ state: 'failed', error: 'agent gone' })).to.equal('agent gone');
    const detail = decodeDriftDetail({ drifted: true, summary: '1 of 3 units drifted: motd (content)' });
    expect(driftOfReport({ drift: detail })).to.equal('1 of 3 units drifted: motd (content)');
    expect(driftOfReport({ drift: { ...detail, summary: '', units: [{ unitId: 'motd', kind: 'file', state: 'update', action: 'update', summary: 'content', changes: [], error: '' }] } })).to.equal('motd: content');
    expect(driftOfReport({ drift: { ...detail, drifted: false, summary: 'all fine' } })).to.equal('');
    expect(driftOfReport({ drift: null })).to.equal('');
    // Off the wire a detail is checked: one that does not decode is reported as drift, saying so.
    expect(driftOfReport({ drift: { ...detail, units: [{ unitId: '', kind: 'file', state: '', action: '', summary: '', changes: [], error: '' }] } }))
      .to.equal('drift reported, but the report is malformed: drift.units[0].unitId: must name the unit');
  });
});

describe('drift watcher (real etcd, jobs engine)', function () {
  this.timeout(60_000);
  let etcd: EtcdServer;
  let client: Etcd3;
  let h: Harness;
  let dw: DriftWatcher;
  let clock: ManualClock;
  /** False: the watcher's passes are skipped (as when its leadership check fails). */
  let passesAllowed = true;
  let skipped = 0;

  before(async () => {
    etcd = await EtcdServer.start('drift');
    client = etcd.client();
  });
  after(async () => {
    await etcd.destroy();
  });
  beforeEach(async () => {
    h = await new Harness(client).start();
    clock = new ManualClock();
    passesAllowed = true;
    skipped = 0;
    dw = new DriftWatcher({ client, keyspace: h.ks, nodes: h.nodes, startJob: (req) => h.starter.start(req), isLeader: () => {
      if (passesAllowed) return h.isLeader();
      skipped++;
      return false;
    }, clock, logger, intervalMs: 3_600_000 });
  });
  afterEach(async () => {
    await dw.stop();
    await h.stop();
  });

  /** What the job runner leaves when a verify job's agent reported drift. */
  async function finishVerify(jobId: string, nodeId: string): Promise<void> {
    // The starter claims the node before its last write of the job (claimed: true): finishing
    // the job before that write would race it.
    const job = await until(clock, `job ${jobId} claimed`, async () => {
      const j = await h.jobs.require(jobId);
      return j.record.claimed ? j : undefined;
    });
    await client.put(h.ks.jobNode(jobId, nodeId)).value(JSON.stringify({
      nodeId, state: 'failed', batch: 0, attempt: 1, units: [], error: 'drift found', drift: DRIFT,
    })).exec();
    // Released by compare-and-swap, as the job runner does: a plain put of a record read earlier
    // could undo the watcher's own write of the verified boot id, made right after the claim.
    await h.nodes.mutate(nodeId, (cur) => {
      if (!cur) return undefined;
      const { currentJob: _c, ...released } = cur;
      return { next: released, event: { type: 'job.released', message: 'verify job done (test)' } };
    });
    await h.jobs.commit({ ...job.record, state: 'Succeeded', finishedAt: new Date().toISOString() }, job.modRevision, { type: 'job.succeeded', message: 'done' });
  }

  for (const policy of ['report', 'repair'] as const) {
    it(`a node back with a new boot id is verified and its drift recorded (policy ${policy})`, async () => {
      await h.withGroup({ repairPolicy: policy });
      await h.putNode({ id: 'n1', state: 'Commissioned', group: 'worker', appliedConfig: 'base@1', bootId: 'boot-1' });
      dw.start();
      await until(clock, 'the baseline', async () => (await h.node('n1')).verifiedBootId === 'boot-1');
      expect(await h.jobs.list()).to.have.length(0);

      await h.putNode({ ...(await h.node('n1')), bootId: 'boot-2' }); // the agent's hello after a reboot
      // The job claims the node first; the new boot id is recorded as verified right after.
      const jobId = await until(clock, 'a verify job, the new boot id recorded', async () => {
        const n = await h.node('n1');
        return n.verifiedBootId === 'boot-2' ? n.currentJob : undefined;
      });
      expect((await h.jobs.require(jobId)).record).to.deep.include({ kind: 'verify', nodeIds: ['n1'], requestedBy: 'drift-watcher' });
      expect((await h.eventList((e) => e.type === 'node.reverify'))[0].message).to.match(/new boot id \(boot-1 → boot-2\)/);

      await finishVerify(jobId, 'n1');
      const drift = await until(clock, 'node.drift', async () => (await h.eventList((e) => e.type === 'node.drift'))[0]);
      expect(drift).to.include({ nodeId: 'n1', jobId });
      expect(drift.message).to.match(/motd: update \/etc\/motd/);
      const n1 = await h.node('n1');
      expect(n1.driftSummary).to.match(/motd/);
      expect(n1.lastError).to.match(/^drift: motd/);

      if (policy === 'repair') {
        const repairId = await until(clock, 'a repair job', async () => (await h.node('n1')).currentJob);
        expect((await h.jobs.require(repairId)).record).to.deep.include({ kind: 'repair', nodeIds: ['n1'], bundle: 'base@1' });
      } else {
        await dw.runOnce();
        expect((await h.jobs.list()).map((j) => j.record.kind)).to.deep.equal(['verify']);
      }
      // Recorded once: another pass adds nothing.
      await dw.runOnce();
      expect(await h.eventList((e) => e.type === 'node.drift')).to.have.length(1);
    });
  }

  // The manager's repairPolicy (clusterctl config set), read at each finding: "report" stops a
  // group's own "repair", "repair" repairs a "report" group, "group" leaves it to the group.
  const overrides: [string, 'report' | 'repair', boolean][] = [['report', 'repair', false], ['repair', 'report', true], ['group', 'repair', true]];
  for (const [setting, groupPolicy, repaired] of overrides) {
    it(`manager repairPolicy=${setting} over a group with policy ${groupPolicy}: ${repaired ? 'repaired' : 'only reported'}`, async () => {
      await h.withGroup({ repairPolicy: groupPolicy });
      await client.put(h.ks.managerConfig()).value(JSON.stringify({ values: { repairPolicy: setting } })).exec();
      await h.putNode({ id: 'n1', state: 'Commissioned', group: 'worker', appliedConfig: 'base@1', bootId: 'boot-2', verifiedBootId: 'boot-1' });
      dw.start();
      const jobId = await until(clock, 'a verify job', async () => (await h.node('n1')).currentJob);
      await finishVerify(jobId, 'n1');
      await until(clock, 'node.drift', async () => (await h.eventList((e) => e.type === 'node.drift'))[0]);
      await dw.runOnce();
      expect((await h.jobs.list()).map((j) => j.record.kind).sort()).to.deep.equal(repaired ? ['repair', 'verify'] : ['verify']);
    });
  }

  it('the baselines of a pass are written together (a fan-out commissions many nodes at once), not one transaction after another', async () => {
    await h.withGroup();
    const ids = ['n1', 'n2', 'n3', 'n4', 'n5'];
    for (const id of ids) await h.putNode({ id, state: 'Commissioned', group: 'worker', appliedConfig: 'base@1', bootId: `boot-${id}` });
    dw.start();
    await dw.runOnce();
    for (const id of ids) expect((await h.node(id)).verifiedBootId, id).to.equal(`boot-${id}`);
    const kvs = (await client.getAll().prefix(h.ks.eventsPrefix()).exec()).kvs
      .filter((kv) => (JSON.parse(kv.value.toString()) as { type?: string }).type === 'node.verify-baseline');
    expect(kvs).to.have.length(ids.length);
    expect(new Set(kvs.map((kv) => kv.create_revision)).size, 'transactions the baselines took').to.be.lessThan(ids.length);
  });

  it('a job\'s per-node records start no pass (a fan-out writes one per node, several times); its record does', async () => {
    await h.withGroup();
    await h.putNode({ id: 'n1', state: 'Commissioned', group: 'worker', appliedConfig: 'base@1', bootId: 'boot-1', verifiedBootId: 'boot-1' });
    dw.start();
    await dw.runOnce();
    // Passes skipped from here on: `skipped` counts the passes started.
    passesAllowed = false;
    let last = -1;
    await waitFor('the loop to be quiet', async () => {
      await clock.advance(1000);
      const quiet = skipped === last;
      last = skipped;
      return quiet;
    }, { intervalMs: 100 });
    const before = skipped;
    await client.put(h.ks.jobNode('j1', 'n1')).value(JSON.stringify({ nodeId: 'n1', state: 'running', batch: 0, attempt: 1, units: [] })).exec();
    // Time for the watch to deliver it (the job record's put below shows that it does, the same way).
    await new Promise((r) => setTimeout(r, 1000));
    await clock.advance(1000);
    expect(skipped, 'passes started by the per-node record').to.equal(before);
    await client.put(h.ks.job('j1')).value(JSON.stringify({ id: 'j1', kind: 'verify', state: 'Running', nodeIds: ['n1'] })).exec();
    await until(clock, 'a pass for the job record', () => Promise.resolve(skipped > before));
  });

  it('resyncs when its watch reconnects: a change it skipped while etcd was away is recorded after etcd is back', async () => {
    await h.withGroup();
    await h.putNode({ id: 'n1', state: 'Commissioned', group: 'worker', appliedConfig: 'base@1', bootId: 'boot-1', verifiedBootId: 'boot-1' });
    dw.start();
    await dw.runOnce();
    // A verify job ends with drift while the watcher's passes are skipped (its leadership check
    // failing, as it does while etcd is unreachable): the watch events of that change are spent.
    passesAllowed = false;
    const job = await h.starter.start(jobRequest({ kind: 'verify', nodeIds: ['n1'], requestedBy: 'test' }));
    await finishVerify(job.record.id, 'n1');
    await until(clock, 'a pass for the change, skipped', async () => skipped > 0);
    await dw.runOnce();
    expect((await h.node('n1')).driftSummary).to.equal(undefined);
    passesAllowed = true;

    // etcd goes away and comes back: the watcher reconnects, and that alone must bring a pass.
    await etcd.stop();
    await etcd.start();
    await waitFor('the test replica to lead again', () => h.election.isLeader(), { timeoutMs: 30_000 });
    const n1 = await until(clock, 'the drift recorded after the reconnect', async () => {
      const n = await h.node('n1');
      return n.driftSummary ? n : undefined;
    }, 30_000);
    expect(n1.driftSummary).to.match(/motd/);
    expect(n1.driftJob).to.equal(job.record.id);
  });
});
