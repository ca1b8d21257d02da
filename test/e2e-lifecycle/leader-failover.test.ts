/**
 * Leadership and fencing with real processes (DESIGN.md "Leadership and fencing"): two
 * coordinator processes, a rolling upgrade with batch 1 over three sandbox nodes, and the
 * LEADER process taken away while node 2's command runs — SIGKILLed, or SIGSTOPped past its
 * election TTL and then resumed with SIGCONT. The other replica must finish the job without
 * re-running what is recorded done (the command appends one line per run to a file under the
 * node root), and no write of the old leader may land after it lost leadership: every etcd key
 * under the prefix is scanned, and events (which name their actor) and the node records
 * written in the same transactions are attributed to a replica.
 */
import { expect } from 'chai';
import type { Etcd3, IKeyValue } from 'etcd3';
import { decodeEvent } from '../../shared';
import { delay, waitFor, type CoordinatorHandle } from '../helpers';
import { nodeStates } from './lifecycle-api';
import { BUNDLE, GROUP, KS, requireNode, runsOf, runsOfVersion } from './lifecycle-fixtures';
import { lifecycleSuite, prepare } from './lifecycle-suite';

interface Candidate {
  id: string;
  address: string;
  createRevision: bigint;
}

async function candidates(client: Etcd3): Promise<Candidate[]> {
  const res = await client.getAll().prefix(KS.electionPrefix()).exec();
  return res.kvs
    .map((kv) => {
      const v = JSON.parse(kv.value.toString()) as { id: string; address: string };
      return { id: v.id, address: v.address, createRevision: BigInt(kv.create_revision) };
    })
    .sort((a, b) => (a.createRevision < b.createRevision ? -1 : 1));
}

/** Every key under the prefix with its mod revision; events decoded with their actor. */
async function scan(client: Etcd3): Promise<{ kvs: IKeyValue[]; actorAt: Map<bigint, string[]> }> {
  const res = await client.getAll().prefix(KS.prefix).exec();
  const actorAt = new Map<bigint, string[]>();
  for (const kv of res.kvs) {
    const key = kv.key.toString();
    if (KS.parseEvent(key) === undefined) continue;
    const ev = decodeEvent(key, kv.value.toString());
    const rev = BigInt(kv.mod_revision);
    actorAt.set(rev, [...(actorAt.get(rev) ?? []), ev.actor]);
  }
  return { kvs: res.kvs, actorAt };
}

describe('e2e lifecycle: leader lost mid rolling upgrade (two coordinator processes, fencing)', function () {
  this.timeout(240_000);
  const s = lifecycleSuite('lc-failover');

  async function upgradeLosingLeader(how: 'SIGKILL' | 'SIGSTOP'): Promise<void> {
    const ids = ['n1', 'n2', 'n3'];
    const { api, nodes, coordinators } = await prepare(s, ids, { versions: [1, 2], coordinators: 2 });
    const [c1, c2] = coordinators as [CoordinatorHandle, CoordinatorHandle];
    const commission = await api.startJob({ kind: 'commission', nodeIds: ids, group: GROUP });
    expect((await api.finished(commission.id, 90_000)).job?.state).to.equal('Succeeded');

    const [leader, follower] = await candidates(s.client);
    expect(leader?.address, 'c1 leads').to.equal(c1.address);
    expect(follower?.address, 'c2 is the other candidate').to.equal(c2.address);
    const oldActor = `coordinator/${leader.id}`;
    const newActor = `coordinator/${follower.id}`;

    // The revision at which the old leader's candidate key goes away (lease expiry after
    // SIGKILL/SIGSTOP): from then on the fence must refuse every write of the old leader.
    const watcher = await s.client.watch().key(KS.electionCandidate(leader.id)).create();
    let fencedFrom: bigint | undefined;
    watcher.on('delete', (kv) => { fencedFrom ??= BigInt(kv.mod_revision); });

    try {
      // Asked of the follower: any replica accepts a job, the leader runs it.
      const api2 = s.api(c2.address);
      const job = await api2.startJob({
        kind: 'upgrade', nodeIds: ids, group: GROUP, bundle: `${BUNDLE}@2`, strategy: 'rolling', batch: '1', extraVarsJson: '{"sleep":"3"}',
      });
      const n2 = nodes.get('n2');
      if (!n2) throw new Error('no n2');
      const mid = await api2.waitJob(job.id, 'n1 done and n2\'s command running', (d) =>
        d.nodes[0]?.state === 'succeeded' && d.nodes[1]?.state === 'running' && runsOfVersion(n2.root, 2) === 1, 60_000);
      expect(mid.nodes[2]?.state).to.equal('pending');

      if (how === 'SIGKILL') {
        await c1.kill();
      } else {
        c1.proc.proc.kill('SIGSTOP');
      }
      await c2.proc.waitForLog(/"msg":"became leader"/, 30_000);
      const d = await api2.finished(job.id, 90_000);
      expect(d.job?.state, `${d.job?.message ?? ''} ${nodeStates(d)}`).to.equal('Succeeded');
      await waitFor('the old leader\'s candidate key deletion to be seen', () => fencedFrom !== undefined, { timeoutMs: 10_000 });

      let resumedAt: bigint | undefined;
      if (how === 'SIGSTOP') {
        // Resume the deposed leader with its pending work (a JobRun waiting on n2, timers, a
        // stream): nothing it still wants to write may land.
        resumedAt = BigInt((await s.client.get(KS.nodesPrefix()).exec()).header.revision);
        c1.proc.proc.kill('SIGCONT');
        await c1.proc.waitForLog(/"msg":"lost leadership"/, 15_000);
        await delay(4000); // its timers (progress flush, pass, ping) fire and fail
        expect(c1.proc.alive, 'the resumed replica keeps running as a follower').to.equal(true);
      }

      for (const id of ids) {
        const root = nodes.get(id)?.root ?? '';
        expect(runsOfVersion(root, 2), `${id}: release 2's command ran exactly once (runs: ${runsOf(root).join(',')})`).to.equal(1);
        const rec = await requireNode(s.client, id);
        expect(rec.state, id).to.equal('Upgraded');
        expect(rec.appliedConfig, id).to.equal(`${BUNDLE}@2`);
      }

      // The fencing proof. Every event names its actor; a node record is written in the same
      // transaction as its event, so it is attributed through the event at its mod revision.
      const fence = fencedFrom as bigint;
      const { kvs, actorAt } = await scan(s.client);
      let oldBefore = 0;
      let newAfter = 0;
      const violations: string[] = [];
      for (const kv of kvs) {
        const key = kv.key.toString();
        const rev = BigInt(kv.mod_revision);
        const actors = actorAt.get(rev) ?? [];
        if (rev < fence) {
          if (actors.includes(oldActor) && KS.parseEvent(key) !== undefined) oldBefore++;
          continue;
        }
        if (actors.includes(newActor)) newAfter++;
        if (actors.includes(oldActor)) violations.push(`${key} @${rev} written by ${oldActor} after its election key was deleted @${fence}`);
        if (resumedAt !== undefined && rev > resumedAt && KS.parseJobKey(key)?.jobId === job.id) {
          violations.push(`${key} @${rev} changed after the job finished and ${oldActor} resumed`);
        }
        if (KS.parseNode(key) !== undefined && actors.length === 0) violations.push(`${key} @${rev} changed without an event`);
      }
      expect(violations).to.deep.equal([]);
      expect(oldBefore, 'the old leader did write events before it lost leadership (the scan is not vacuous)').to.be.greaterThan(0);
      expect(newAfter, 'the new leader\'s writes are after the fence point').to.be.greaterThan(0);
      const events = await api2.events({ jobId: job.id });
      // Before the loss the old leader recorded job.started and n1's transitions; n3's are the new leader's.
      expect(events.filter((e) => e.actor === oldActor).map((e) => e.type), 'the old leader started the job').to.include('job.started');
      const n3moves = events.filter((e) => e.nodeId === 'n3' && e.to !== '');
      expect(n3moves.map((e) => e.actor), 'n3 was upgraded by the new leader').to.deep.equal([newActor, newActor]);
    } finally {
      await watcher.cancel();
    }
  }

  it('SIGKILL of the leader process while node 2\'s command runs: the other replica finishes the job, done nodes not re-run, no write of the old leader after its election key is gone', async () => {
    await upgradeLosingLeader('SIGKILL');
  });

  it('SIGSTOP of the leader past its election TTL, then SIGCONT: the new leader finishes, and the resumed old leader\'s pending writes are refused by the fence', async () => {
    await upgradeLosingLeader('SIGSTOP');
  });
});
