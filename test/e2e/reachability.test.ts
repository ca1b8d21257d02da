/**
 * Reachability from the agent's stream, end to end with real processes at the DEFAULT
 * settings (45 s membership lease, the coordinator's default stream grace and TCP liveness):
 *
 * - SIGKILL of an agent makes its node Unreachable with signal "stream", long before its lease
 *   could expire, and `node describe` says which signal fired;
 * - a job is not sent to an Unreachable node: that node's result says so, the others run;
 * - a node lost mid-command fails at once by the job's failure rules, not after the runner's
 *   60 s connect timeout.
 *
 * Deadlines are generous (a loaded box); what they prove is which signal fired: the lease is
 * 45 s, the connect timeout 60 s, and both tests finish far inside them.
 */
import { expect } from 'chai';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, KernelCut, waitFor } from '../helpers';
import { DEFAULT_SETTINGS } from '../../coordinator/options';
import { e2eSuite } from './e2e-suite';
import { watchNode } from './e2e-watch';
import { decodeJobNode } from '../../coordinator/jobs/job-record';
import { Keyspace } from '../../shared';

/** The agent's default --lease-ttl (agent/lease-membership.ts DEFAULT_LEASE_TTL_SECONDS). */
const DEFAULT_LEASE_TTL_SEC = 45;
/** Well inside the lease: a node Unreachable by then was found by its stream. */
const STREAM_DEADLINE_MS = 20_000;

describe('e2e: reachability from the agent stream (default settings)', function () {
  this.timeout(180_000);
  const suite = e2eSuite('reachability');

  async function twoAgents(name: string): Promise<{ cluster: Awaited<ReturnType<typeof suite.startCluster>>; roots: Map<string, string> }> {
    const cluster = await suite.startCluster({ name, leaseTtlSec: DEFAULT_LEASE_TTL_SEC });
    const roots = new Map<string, string>();
    for (const id of ['n1', 'n2']) {
      const root = join(cluster.baseDir, 'roots', id);
      mkdirSync(root, { recursive: true });
      roots.set(id, root);
      await cluster.startAgent(id, { extraArgs: ['--root', root] });
    }
    await cluster.waitForNodes('n1 and n2 Discovered, connected and reachable', (ns) =>
      ns.length === 2 && ns.every((n) => n.state === 'Discovered' && n.connected === true && n.reachable), 60_000);
    return { cluster, roots };
  }

  it('SIGKILL of an agent: Unreachable by signal "stream" well before the 45 s lease; a job then skips it and says why', async () => {
    const { cluster } = await twoAgents('reach-kill');
    const client = suite.etcd.client();
    const watch = await watchNode(client, 'n1');
    try {
      const killedAt = Date.now();
      await cluster.agent('n1').kill();
      const { at, node } = await watch.until((n) => !n.reachable, STREAM_DEADLINE_MS, 'n1 unreachable by its stream');
      console.log(`      detection: ${at - killedAt} ms after SIGKILL (lease ${DEFAULT_LEASE_TTL_SEC} s, not expired)`);
      expect(node.unreachableSignal, 'the signal that fired').to.equal('stream');
      expect(node.unreachableSince, 'since when').to.be.a('string').and.not.equal('');
      expect(node.state, 'lifecycle untouched').to.equal('Discovered');

      const described = await cluster.ctl(['node', 'describe', 'n1']);
      expect(described.stdout, described.stderr).to.match(/Reachable:\s+no, since .*\(agent stream closed\)/);
      const json = await cluster.ctl(['nodes', '-o', 'json']);
      const n1 = (JSON.parse(json.stdout) as { id: string; reachable: boolean; unreachableSignal: string }[]).find((n) => n.id === 'n1');
      expect(n1).to.include({ reachable: false, unreachableSignal: 'stream' });

      // The job is not sent to n1 (its result says so); n2 runs it.
      const r = await cluster.ctl(['exec', '--nodes', 'n1,n2', '--', 'true'], 60_000);
      const context = `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
      expect(r.code, context).to.equal(1);
      expect(r.stderr, context).to.match(/^n1\s+failed\s.*node n1 is Unreachable \(agent stream closed.*the command was not sent/m);
      expect(r.stderr, context).to.match(/^n2\s+succeeded\s+0\s*$/m);

      // The agent comes back: reachable again, signal cleared.
      await cluster.agent('n1').restart();
      const back = await watch.until((n) => n.reachable, 30_000, 'n1 reachable again');
      expect(back.node.unreachableSignal, 'signal cleared').to.equal(undefined);
      expect(back.node.unreachableSince, 'since cleared').to.equal(undefined);
    } finally {
      await watch.close();
    }
  });

  it('a partition (silence, no FIN, no ACK) at the default TCP liveness: Unreachable by signal "stream" within seconds, since when the agent went silent', async () => {
    const cluster = suite.cluster({ name: 'reach-cut', leaseTtlSec: DEFAULT_LEASE_TTL_SEC });
    const port = await freePort();
    const cut = await KernelCut.create();
    try {
      await cluster.startCoordinator({ port });
      await cluster.startAgent('n1');
      await cluster.waitForNodes('n1 connected and reachable', (ns) => ns.length === 1 && ns[0].connected === true && ns[0].reachable, 60_000);
      await new Promise((r) => setTimeout(r, 3000)); // an idle, established stream
      const watch = await watchNode(suite.etcd.client(), 'n1');
      try {
        const cutAt = Date.now();
        await cut.cut(port);
        const { at, node } = await watch.until((n) => !n.reachable, STREAM_DEADLINE_MS, 'n1 unreachable after the cut');
        console.log(`      detection: ${at - cutAt} ms after the cut; unreachable since ${Date.parse(node.unreachableSince ?? '') - cutAt} ms after it`);
        expect(node.unreachableSignal, 'the signal that fired').to.equal('stream');
        // Closed by the leader's kernel (nothing received for the liveness window: probes
        // unanswered), counted from the start of that window, not from the close plus the
        // stream grace; the HTTP/2 PING (30 s) had no part in it. The last packet before the
        // cut (an answered probe, one every 2 s) came up to 2 s before it, so the close comes
        // 1-3 s after the cut.
        const windowMs = DEFAULT_SETTINGS.tcpLivenessMs;
        const since = Date.parse(node.unreachableSince ?? '');
        expect(since, 'since: the start of the silent window, not after the cut').to.be.at.most(cutAt + 1000);
        expect(at - since, 'found once the whole window had been silent').to.be.at.least(windowMs - 100);
        expect(at - cutAt, 'within the liveness window and a pass, far inside the 45 s lease and the 30 s PING').to.be.below(windowMs + 2000);
        const logs = cluster.logTails(200);
        expect(logs).to.match(/connection dropped by TCP liveness/);
        expect(logs).not.to.match(/connection dropped by keepalive/);
      } finally {
        await watch.close();
      }
    } finally {
      await cut.close();
    }
  });

  it('a node lost mid-command fails at once (not after the 60 s connect timeout); the other node finishes', async () => {
    const { cluster, roots } = await twoAgents('reach-mid');
    const ks = new Keyspace();
    const client = suite.etcd.client();
    // Each node marks that the command started, then runs for two minutes (n2 ends at once).
    const script = 'touch started; [ "$(basename "$PWD")" = n2 ] || sleep 120';
    const startedAt = Date.now();
    const exec = cluster.ctl(['exec', '--nodes', 'n1,n2', '--', 'sh', '-c', script], 150_000);
    const n1Root = roots.get('n1') ?? '';
    await waitFor('the command running on n1', () => existsSync(join(n1Root, 'started')), { timeoutMs: 60_000 });
    const killedAt = Date.now();
    await cluster.agent('n1').kill();
    const r = await exec;
    const endedAt = Date.now();
    const context = `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
    console.log(`      job ended ${endedAt - killedAt} ms after SIGKILL (started ${killedAt - startedAt} ms before it)`);
    expect(r.code, context).to.equal(1);
    expect(r.stderr, context).to.match(/^n1\s+failed\s.*became Unreachable mid-command/m);
    expect(r.stderr, context).to.match(/^n2\s+succeeded\s+0\s*$/m);
    expect(endedAt - killedAt, 'failed by reachability, not by the 60 s connect timeout').to.be.below(45_000);

    const jobId = /job (j-[0-9]+-[0-9a-f]+)/.exec(r.stderr)?.[1] ?? '';
    const rec = decodeJobNode(ks.jobNode(jobId, 'n1'), (await client.get(ks.jobNode(jobId, 'n1')).string()) ?? '');
    expect(rec.state, 'the recorded result').to.equal('failed');
  });
});
