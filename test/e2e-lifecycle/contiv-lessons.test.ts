/**
 * DESIGN.md "Lessons from Contiv Cluster's own issues": one test per lesson, named after it,
 * with real processes (coordinator, agents inside their systemd sandboxes, SIGKILL for crashes
 * and reboots). #62/#63 (cancel a stuck job) and #104 are in cancel-and-refusals.test.ts.
 */
import { expect } from 'chai';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor } from '../helpers';
import { nodeStates } from './lifecycle-api';
import { BUNDLE, commandPid, GROUP, KS, nodeRecord, processAlive, requireNode, runsOf, SERVICE, waitNodes } from './lifecycle-fixtures';
import { lifecycleSuite, prepare } from './lifecycle-suite';

/** What a power cut does to a running command: it and its children die with the machine. */
function killTree(pid: number): void {
  let children: number[] = [];
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    // already gone
  }
  for (const p of [pid, ...children]) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

describe('e2e lifecycle: Contiv Cluster lessons (real processes)', function () {
  this.timeout(240_000);
  const s = lifecycleSuite('lc-contiv');

  it('manager restart loses node states (#66, #76): SIGKILL the coordinator and restart it; every node\'s state is unchanged', async () => {
    const ids = ['n1', 'n2', 'n3'];
    const { api, nodes, coordinators } = await prepare(s, ids);
    writeFileSync(join(nodes.get('n2')?.root ?? '', 'fail-here'), '');
    const job = await api.startJob({ kind: 'commission', nodeIds: ['n1', 'n2'], group: GROUP, maxFailures: 1 });
    await api.finished(job.id, 60_000);
    const snapshot = async (): Promise<string[]> => Promise.all(ids.map(async (id) => {
      const n = await requireNode(s.client, id);
      // lastError and appliedDigest are left out: on reconnect the agent's hello and its reload's
      // drift report refresh them (what is on the machine), which is not lifecycle state.
      return `${id}:${n.state}:${n.group ?? '-'}:${n.appliedConfig ?? '-'}:${n.currentJob ?? '-'}:${n.stateChangedAt}`;
    }));
    const before = await snapshot();
    expect(before.map((l) => l.split(':').slice(0, 2).join(':'))).to.deep.equal(['n1:Commissioned', 'n2:Failed', 'n3:Discovered']);

    const c1 = coordinators[0];
    await c1.kill();
    await c1.restart();
    // The restarted replica leads again and the agents are back on its streams.
    await waitFor('every agent reconnected to the restarted coordinator', () =>
      ids.every((id) => (nodes.get(id)?.proc.logs.match(/"msg":"connected to coordinator"/g) ?? []).length >= 2), { timeoutMs: 30_000 });
    await new Promise((r) => setTimeout(r, 3000)); // a resync pass or two (--resync-interval 2)
    expect(await snapshot()).to.deep.equal(before);
    expect(await nodes.get('n1')?.unitActiveState(SERVICE)).to.equal('active');
  });

  it('job output only in the journal, only for the last job (#103, #113): the output of two successive jobs is retrievable per node from etcd via GetJob', async () => {
    const { api } = await prepare(s, ['n1'], { versions: [1, 2] });
    const first = await api.startJob({ kind: 'commission', nodeIds: ['n1'], group: GROUP, extraVarsJson: '{"tag":"first-job"}' });
    expect((await api.finished(first.id, 60_000)).job?.state).to.equal('Succeeded');
    const second = await api.startJob({ kind: 'upgrade', nodeIds: ['n1'], group: GROUP, bundle: `${BUNDLE}@2`, extraVarsJson: '{"tag":"second-job"}' });
    expect((await api.finished(second.id, 60_000)).job?.state).to.equal('Succeeded');

    const out1 = (await api.getJob(first.id)).nodes.find((n) => n.nodeId === 'n1')?.output ?? '';
    const out2 = (await api.getJob(second.id)).nodes.find((n) => n.nodeId === 'n1')?.output ?? '';
    expect(out1).to.include('job output: release 1 tag=first-job');
    expect(out1).to.not.include('second-job');
    expect(out2).to.include('job output: release 2 tag=second-job');
    // Kept in etcd, not in a coordinator's memory: the per-node records themselves hold it.
    expect(await s.client.get(KS.jobNode(first.id, 'n1')).string()).to.include('tag=first-job');
    expect(await s.client.get(KS.jobNode(second.id, 'n1')).string()).to.include('tag=second-job');
  });

  it('a rebooted or returning node is not re-verified (#123, #169): after a managed file is changed behind the agent\'s back and the agent restarts with a new boot id, a verify runs and drift is recorded', async () => {
    const { api, nodes } = await prepare(s, ['n1']);
    const n1 = nodes.get('n1');
    if (!n1) throw new Error('no n1');
    const c = await api.startJob({ kind: 'commission', nodeIds: ['n1'], group: GROUP });
    expect((await api.finished(c.id, 60_000)).job?.state).to.equal('Succeeded');
    // The drift watcher takes the commissioned boot as the verified baseline.
    await waitFor('n1 verified for its first boot', async () => (await nodeRecord(s.client, 'n1'))?.verifiedBootId === 'n1-boot-1', { timeoutMs: 20_000 });

    writeFileSync(join(n1.root, 'opt/app/app.conf'), 'edited by hand\n');
    await n1.restart({ bootId: 'n1-boot-2' });
    await waitNodes(s.client, ['n1'], 'Commissioned');

    const verify = await waitFor('a verify job for n1 after the reboot', async () => (await api.listJobs()).find((j) => j.kind === 'verify' && j.nodeIds.includes('n1')), { timeoutMs: 30_000 });
    const vd = await api.finished(verify.id, 60_000);
    expect(vd.nodes[0]?.drift?.units.map((u) => u.unitId), nodeStates(vd)).to.include('conf');
    const rec = await waitFor('drift recorded on n1', async () => {
      const n = await nodeRecord(s.client, 'n1');
      return n?.driftSummary && n.verifiedBootId === 'n1-boot-2' ? n : undefined;
    }, { timeoutMs: 30_000 });
    expect(rec.driftSummary).to.match(/conf/);
    const drift = (await api.events({ nodeId: 'n1' })).filter((e) => e.type === 'node.drift');
    expect(drift.length, 'a node.drift event').to.be.greaterThan(0);
    expect(drift.map((e) => e.message).join('\n')).to.match(/conf/);
  });

  it('a node rebooted mid-commission is stuck forever (#158): the agent comes back with a new boot id while its commission command runs -> node Failed with the reason, and re-commission works', async () => {
    const { api, nodes } = await prepare(s, ['n1']);
    const n1 = nodes.get('n1');
    if (!n1) throw new Error('no n1');
    const job = await api.startJob({ kind: 'commission', nodeIds: ['n1'], group: GROUP, extraVarsJson: '{"sleep":"60"}' });
    const pid = await waitFor('the commission command to run', () => commandPid(n1.root), { timeoutMs: 30_000 });
    expect((await requireNode(s.client, 'n1')).state).to.equal('Commissioning');

    // The reboot: the agent and the command die, the agent comes back with a new boot id.
    await n1.kill();
    killTree(pid);
    await n1.restart({ bootId: 'n1-boot-2' });
    const failed = await waitFor('n1 Failed after its reboot', async () => {
      const n = await nodeRecord(s.client, 'n1');
      return n?.state === 'Failed' ? n : undefined;
    }, { timeoutMs: 30_000 });
    expect(failed.lastError).to.match(/boot/);
    expect(processAlive(pid)).to.equal(false);

    // The job fails the node instead of sending the command again to the rebooted agent (which
    // no longer knows it and would run it a second time), and releases it: no operator step.
    const old = await api.finished(job.id, 60_000);
    expect(old.job?.state, nodeStates(old)).to.equal('Failed');
    expect(old.nodes[0]?.error).to.match(/rebooted while the command ran/);
    expect((await requireNode(s.client, 'n1')).state).to.equal('Failed');
    expect(runsOf(n1.root).length, 'the interrupted run only; the command was not re-sent').to.equal(1);
    const again = await api.startJob({ kind: 'commission', nodeIds: ['n1'], group: GROUP });
    const d = await api.finished(again.id, 90_000);
    expect(d.job?.state, nodeStates(d)).to.equal('Succeeded');
    expect((await requireNode(s.client, 'n1')).state).to.equal('Commissioned');
    expect(runsOf(n1.root).length, 'the interrupted run and the new one').to.equal(2);
  });

  it('decommission stuck forever (#114): the agent dies mid-decommission and does not return -> the job fails the node on its timeout, node Failed; when it returns, decommission again works', async () => {
    const { api, nodes } = await prepare(s, ['n1']);
    const n1 = nodes.get('n1');
    if (!n1) throw new Error('no n1');
    const c = await api.startJob({ kind: 'commission', nodeIds: ['n1'], group: GROUP });
    expect((await api.finished(c.id, 60_000)).job?.state).to.equal('Succeeded');

    // The undo of the command unit sleeps 60 s with these vars: the agent dies in it.
    const dj = await api.startJob({ kind: 'decommission', nodeIds: ['n1'], extraVarsJson: '{"sleep":"60"}' });
    const pid = await waitFor('the undo command to run', () => commandPid(n1.root, 'undo.pid'), { timeoutMs: 30_000 });
    expect((await requireNode(s.client, 'n1')).state).to.equal('Decommissioning');
    await n1.kill();
    killTree(pid);

    // The runner gives an absent agent 60 s (its default connect timeout) before failing the node.
    const d = await api.finished(dj.id, 120_000);
    expect(d.job?.state, nodeStates(d)).to.equal('Failed');
    expect(d.nodes[0]?.error).to.match(/did not reconnect|unreachable/);
    const rec = await requireNode(s.client, 'n1');
    expect(rec.state).to.equal('Failed');
    expect(rec.lastError).to.match(/decommission failed/);

    await n1.restart();
    await waitNodes(s.client, ['n1'], 'Failed');
    const again = await api.startJob({ kind: 'decommission', nodeIds: ['n1'] });
    const d2 = await api.finished(again.id, 60_000);
    expect(d2.job?.state, nodeStates(d2)).to.equal('Succeeded');
    expect((await requireNode(s.client, 'n1')).state).to.equal('Decommissioned');
    expect((await n1.exec(`systemctl --user show -p LoadState --value ${SERVICE}`)).stdout.trim()).to.equal('not-found');
  });

  it('a failed commission left a node that could no longer be decommissioned: from Failed, decommission succeeds and removes what the failed commission applied', async () => {
    const { api, nodes } = await prepare(s, ['n1']);
    const n1 = nodes.get('n1');
    if (!n1) throw new Error('no n1');
    writeFileSync(join(n1.root, 'fail-here'), '');
    const c = await api.startJob({ kind: 'commission', nodeIds: ['n1'], group: GROUP });
    const cd = await api.finished(c.id, 60_000);
    expect(cd.job?.state, nodeStates(cd)).to.equal('Failed');
    expect((await requireNode(s.client, 'n1')).state).to.equal('Failed');
    expect(readFileSync(join(n1.root, 'opt/app/app.conf'), 'utf8'), 'the units before the failing one were applied').to.match(/^release=1/);

    const dj = await api.startJob({ kind: 'decommission', nodeIds: ['n1'] });
    const d = await api.finished(dj.id, 60_000);
    expect(d.job?.state, `${d.job?.message ?? ''} ${nodeStates(d)}`).to.equal('Succeeded');
    expect((await requireNode(s.client, 'n1')).state).to.equal('Decommissioned');
    expect(() => readFileSync(join(n1.root, 'opt/app/app.conf'))).to.throw(/ENOENT/);
  });
});
