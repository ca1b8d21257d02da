/**
 * Commission, failure threshold and decommission with real processes: a coordinator process,
 * agent processes each inside its own systemd sandbox (a real user manager over D-Bus), real
 * units applied in each node's root and on its manager, checked from outside with
 * `systemctl --user` through the sandbox and from etcd.
 */
import { expect } from 'chai';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { nodeStates } from './lifecycle-api';
import { BUNDLE, GROUP, requireNode, runsOf, runsOfVersion, SERVICE } from './lifecycle-fixtures';
import { lifecycleSuite, prepare } from './lifecycle-suite';

describe('e2e lifecycle: commission, failure threshold, decommission (real processes, real systemd)', function () {
  this.timeout(180_000);
  const s = lifecycleSuite('lc-commission');

  it('commissions three sandbox nodes: file, directory, command and systemd units applied on real systemd, nodes Commissioned, job Succeeded, events recorded', async () => {
    const ids = ['n1', 'n2', 'n3'];
    const { api, nodes } = await prepare(s, ids);
    const job = await api.startJob({ kind: 'commission', nodeIds: ids, group: GROUP });
    const d = await api.finished(job.id, 90_000);
    expect(d.job?.state, `${d.job?.message ?? ''} ${nodeStates(d)}`).to.equal('Succeeded');
    expect(d.job?.counts).to.deep.equal({ succeeded: 3 });

    for (const id of ids) {
      const n = nodes.get(id);
      if (!n) throw new Error(`no sandbox ${id}`);
      expect(readFileSync(join(n.root, 'opt/app/app.conf'), 'utf8'), `${id} app.conf`).to.equal(`release=1 host=host-${id}\n`);
      expect(runsOf(n.root), `${id}: the command ran once`).to.deep.equal(['1']);
      expect(existsSync(join(n.unitDir, SERVICE)), `${id}: unit file written`).to.equal(true);
      // Cross-check with the node's own systemd, not with what the agent says.
      expect(await n.unitActiveState(SERVICE), `${id}: ${SERVICE} on its manager`).to.equal('active');
      expect((await n.exec(`systemctl --user is-enabled ${SERVICE}`)).stdout.trim()).to.equal('enabled');

      const rec = await requireNode(s.client, id);
      expect(rec.state).to.equal('Commissioned');
      expect(rec.group).to.equal(GROUP);
      expect(rec.appliedConfig).to.equal(`${BUNDLE}@1`);
      expect(rec.currentJob).to.equal(undefined);
      const jn = d.nodes.find((x) => x.nodeId === id);
      expect(jn?.state).to.equal('succeeded');
      expect(jn?.units.map((u) => `${u.unitId}:${u.status}`)).to.deep.equal(['app-dir:changed', 'conf:changed', 'runs:changed', 'svc:changed']);
    }

    // The audit trail: the job's lifecycle and each node's two transitions, by the coordinator.
    const events = await api.events({ jobId: job.id });
    const types = events.map((e) => e.type);
    expect(types).to.include.members(['job.created', 'job.started', 'job.succeeded']);
    for (const id of ids) {
      const moves = events.filter((e) => e.nodeId === id && e.to !== '').map((e) => `${e.from}->${e.to}`);
      expect(moves, `transitions of ${id}`).to.deep.equal(['Discovered->Commissioning', 'Commissioning->Commissioned']);
    }
    expect(events.every((e) => e.actor !== ''), 'every event names its actor').to.equal(true);
  });

  it('stops a rolling upgrade at its failure threshold (--rollback never): max-failures 0, batch 1 -> node 1 fails, nodes 2-3 skipped, job Failed, node 1 Failed with the reason', async () => {
    const ids = ['n1', 'n2', 'n3'];
    const { api, nodes } = await prepare(s, ids, { versions: [1, 2] });
    const first = await api.startJob({ kind: 'commission', nodeIds: ids, group: GROUP });
    expect((await api.finished(first.id, 90_000)).job?.state).to.equal('Succeeded');

    const n1 = nodes.get('n1');
    if (!n1) throw new Error('no n1');
    writeFileSync(join(n1.root, 'fail-here'), '');
    const job = await api.startJob({ kind: 'upgrade', nodeIds: ids, group: GROUP, bundle: `${BUNDLE}@2`, strategy: 'rolling', batch: '1', maxFailures: 0, rollback: 'never' });
    const d = await api.finished(job.id, 90_000);
    expect(d.job?.state, d.job?.message).to.equal('Failed');
    expect(d.job?.message).to.match(/1 node\(s\) failed, more than --max-failures 0/);
    expect(d.nodes.map((n) => `${n.nodeId}:${n.state}`)).to.deep.equal(['n1:failed', 'n2:skipped', 'n3:skipped']);
    expect(d.nodes[0].error).to.match(/unit runs/);

    const r1 = await requireNode(s.client, 'n1');
    expect(r1.state).to.equal('Failed');
    expect(r1.lastError).to.match(/upgrade failed \(job [^)]+\): .*unit runs/);
    expect(runsOfVersion(n1.root, 2), 'n1 ran release 2 once').to.equal(1);
    for (const id of ['n2', 'n3']) {
      const r = await requireNode(s.client, id);
      expect(r.state, id).to.equal('Commissioned');
      expect(r.appliedConfig, id).to.equal(`${BUNDLE}@1`);
      expect(r.currentJob, `${id} released`).to.equal(undefined);
      expect(runsOfVersion(nodes.get(id)?.root ?? '', 2), `${id} never ran release 2`).to.equal(0);
      expect(readFileSync(join(nodes.get(id)?.root ?? '', 'opt/app/app.conf'), 'utf8')).to.equal(`release=1 host=host-${id}\n`);
    }
  });

  it('decommission removes the units (file gone, service stopped, unit file removed on the node\'s systemd), node Decommissioned, and it can be commissioned again', async () => {
    const { api, nodes } = await prepare(s, ['n1']);
    const n = nodes.get('n1');
    if (!n) throw new Error('no n1');
    const c1 = await api.startJob({ kind: 'commission', nodeIds: ['n1'], group: GROUP });
    expect((await api.finished(c1.id, 60_000)).job?.state).to.equal('Succeeded');
    expect(await n.unitActiveState(SERVICE)).to.equal('active');

    const dj = await api.startJob({ kind: 'decommission', nodeIds: ['n1'] });
    const d = await api.finished(dj.id, 60_000);
    expect(d.job?.state, `${d.job?.message ?? ''} ${nodeStates(d)}`).to.equal('Succeeded');
    expect(existsSync(join(n.root, 'opt/app/app.conf')), 'app.conf removed').to.equal(false);
    expect(existsSync(join(n.root, 'opt/app/runs')), 'the command\'s undo ran').to.equal(false);
    expect(existsSync(join(n.unitDir, SERVICE)), 'unit file removed').to.equal(false);
    expect(await n.unitActiveState(SERVICE)).to.not.equal('active');
    expect((await n.exec(`systemctl --user show -p LoadState --value ${SERVICE}`)).stdout.trim()).to.equal('not-found');
    const rec = await requireNode(s.client, 'n1');
    expect(rec.state).to.equal('Decommissioned');
    expect(rec.appliedConfig).to.equal(undefined);
    expect(rec.currentJob).to.equal(undefined);

    const c2 = await api.startJob({ kind: 'commission', nodeIds: ['n1'], group: GROUP });
    expect((await api.finished(c2.id, 60_000)).job?.state).to.equal('Succeeded');
    expect((await requireNode(s.client, 'n1')).state).to.equal('Commissioned');
    expect(await n.unitActiveState(SERVICE)).to.equal('active');
    expect(runsOf(n.root)).to.deep.equal(['1']);
  });
});
