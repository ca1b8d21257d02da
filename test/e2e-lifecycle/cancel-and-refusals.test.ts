/**
 * Cancelling a job whose command is stuck (Contiv #62/#63: "no way to cancel a stuck job"),
 * and refusals that must explain themselves and change nothing (illegal transitions, unknown
 * nodes, a second commission of a node being commissioned — Contiv #104). Real coordinator and
 * agent processes; the command's process is watched from outside through its pid file.
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { status } from '@grpc/grpc-js';
import { delay, waitFor } from '../helpers';
import { nodeStates } from './lifecycle-api';
import { commandPid, coordinatorSnapshot, GROUP, processAlive, requireNode, runsOf } from './lifecycle-fixtures';
import { lifecycleSuite, prepare } from './lifecycle-suite';

/** Direct children of a process (the command's `sleep` under its shell). */
function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

describe('e2e lifecycle: cancel and refusals (real processes)', function () {
  this.timeout(180_000);
  const s = lifecycleSuite('lc-cancel');

  it('no way to cancel a stuck job (#62, #63): a command sleeping 60 s is cancelled, its process is killed on the agent, node Cancelled ("cancelled by operator"), job Cancelled, and the node can be commissioned again', async () => {
    const { api, nodes } = await prepare(s, ['n1']);
    const n1 = nodes.get('n1');
    if (!n1) throw new Error('no n1');
    const job = await api.startJob({ kind: 'commission', nodeIds: ['n1'], group: GROUP, extraVarsJson: '{"sleep":"60"}' });
    const pid = await waitFor('the command to run (its pid file)', () => commandPid(n1.root), { timeoutMs: 30_000 });
    const sleeper = await waitFor('the command\'s sleep', () => childrenOf(pid)[0], { timeoutMs: 5000 });
    expect(processAlive(pid)).to.equal(true);
    expect((await requireNode(s.client, 'n1')).state).to.equal('Commissioning');

    const cancelled = await api.cancelJob(job.id, 'stuck');
    expect(cancelled.state).to.equal('Cancelling');
    const d = await api.finished(job.id, 30_000);
    expect(d.job?.state, nodeStates(d)).to.equal('Cancelled');
    expect(d.nodes[0]?.state).to.equal('cancelled');
    // The agent confirmed: the coordinator did not have to give up waiting for it.
    expect(d.nodes[0]?.error).to.equal('cancelled by operator');
    await waitFor('the command and its sleep to be gone', () => !processAlive(pid) && !processAlive(sleeper), { timeoutMs: 10_000 });

    const rec = await requireNode(s.client, 'n1');
    expect(rec.state).to.equal('Cancelled');
    expect(rec.lastError).to.equal('cancelled by operator');
    expect(rec.currentJob).to.equal(undefined);

    // From Cancelled every path stays open: commission again (no sleep this time).
    const again = await api.startJob({ kind: 'commission', nodeIds: ['n1'], group: GROUP });
    const d2 = await api.finished(again.id, 60_000);
    expect(d2.job?.state, nodeStates(d2)).to.equal('Succeeded');
    expect((await requireNode(s.client, 'n1')).state).to.equal('Commissioned');
    expect(runsOf(n1.root), 'the cancelled run and the new one').to.deep.equal(['1', '1']);
    expect(await n1.unitActiveState('app.service')).to.equal('active');
  });

  it('illegal transitions and unknown nodes give clear errors and change nothing: decommission of a Discovered node, commission of an unknown node, a second commission of a node being commissioned (#104)', async () => {
    const { api, nodes } = await prepare(s, ['n1', 'n2']);
    const before = await coordinatorSnapshot(s.client);

    const illegal = await api.startJob({ kind: 'decommission', nodeIds: ['n1'] }).then(() => undefined, (e: unknown) => e as Error & { code: number });
    expect(illegal?.code, illegal?.message).to.equal(status.FAILED_PRECONDITION);
    expect(illegal?.message).to.equal('node n1 is Discovered; it cannot move to Decommissioning (from Discovered it can move to Commissioning)');
    expect(await coordinatorSnapshot(s.client), 'nothing changed').to.deep.equal(before);

    const unknown = await api.startJob({ kind: 'commission', nodeIds: ['ghost-7'], group: GROUP }).then(() => undefined, (e: unknown) => e as Error & { code: number });
    expect(unknown?.code, unknown?.message).to.equal(status.NOT_FOUND);
    expect(unknown?.message).to.match(/^node ghost-7 not found/);
    expect(unknown?.message.split('\n')).to.have.length(1);
    expect(await coordinatorSnapshot(s.client), 'nothing changed').to.deep.equal(before);

    // A long commission of n2; while it runs, a second one is refused naming the running job.
    const n2 = nodes.get('n2');
    if (!n2) throw new Error('no n2');
    const job = await api.startJob({ kind: 'commission', nodeIds: ['n2'], group: GROUP, extraVarsJson: '{"sleep":"60"}' });
    await waitFor('n2\'s command to run', () => commandPid(n2.root), { timeoutMs: 30_000 });
    await api.waitJob(job.id, 'n2 recorded running its command', (d) => d.nodes[0]?.units.some((u) => u.unitId === 'runs') === true, 15_000);
    await delay(1000); // progress writes settle: the command prints nothing while it sleeps
    const during = await coordinatorSnapshot(s.client);
    const dup = await api.startJob({ kind: 'commission', nodeIds: ['n2'], group: GROUP }).then(() => undefined, (e: unknown) => e as Error & { code: number });
    expect(dup?.code, dup?.message).to.equal(status.FAILED_PRECONDITION);
    expect(dup?.message).to.include(`node n2 is already in job ${job.id}`);
    expect(await coordinatorSnapshot(s.client), 'nothing changed').to.deep.equal(during);
    expect((await api.listJobs()).map((j) => j.id)).to.deep.equal([job.id]);
    expect((await requireNode(s.client, 'n1')).state).to.equal('Discovered');
  });
});
