/**
 * End to end, real processes: bad input to clusterctl — an unknown node id, a malformed label
 * selector, an unreachable coordinator — gets exit code 1 and ONE clear line on stderr, and
 * changes nothing: the whole etcd keyspace is the same before and after.
 */
import { expect } from 'chai';
import { delay, etcdSnapshot, freePort, waitFor } from '../helpers';
import { e2eSuite } from './e2e-suite';
import { expectOneLineError } from '../helpers/cli-results';

describe('e2e: clusterctl bad input', function () {
  this.timeout(120_000);
  const suite = e2eSuite('bad-input');

  it('unknown node id, malformed label selector, unreachable coordinator: exit 1, one clear line, etcd unchanged', async () => {
    const cluster = await suite.startCluster({ name: 'bad-input', leaseTtlSec: 3 });
    await cluster.startAgent('n1');
    await cluster.waitForNodes('n1 Discovered', (ns) => ns.some((n) => n.id === 'n1' && n.state === 'Discovered' && n.reachable));
    const client = suite.etcd.client();

    // Wait until the keyspace is quiet, so a difference later can only come from the bad input.
    let before: Record<string, string> = {};
    await waitFor('a quiet keyspace', async () => {
      const a = await etcdSnapshot(client);
      await delay(1500);
      before = await etcdSnapshot(client);
      return JSON.stringify(a) === JSON.stringify(before);
    }, { timeoutMs: 30_000, intervalMs: 0 });

    // Unknown node id: says which id, and how to find the right one.
    expectOneLineError(await cluster.ctl(['node', 'describe', 'no-such-node']), /no-such-node/, { quiet: true });
    expectOneLineError(await cluster.ctl(['node', 'describe', 'no-such-node', '-o', 'json']), /not found/i, { quiet: true });
    // An id that cannot even be a key.
    expectOneLineError(await cluster.ctl(['node', 'describe', '../etc/passwd']), /invalid node id|\.\.\/etc\/passwd/, { quiet: true });

    // Malformed label selectors: say what is wrong with which selector.
    for (const sel of ['role=work er', 'zone in (a,', 'role=,', '=x']) {
      expectOneLineError(await cluster.ctl(['nodes', '-l', sel, '-o', 'json']), /selector/, { quiet: true });
    }

    // An unknown flag.
    expectOneLineError(await cluster.ctl(['nodes', '--bogus']), /--bogus/, { quiet: true });

    // Unreachable coordinator: nothing listens on that port. Fails within --timeout, naming the address.
    const deadPort = await freePort();
    const t0 = Date.now();
    const r = await cluster.ctl(['--coordinator', `127.0.0.1:${deadPort}`, '--timeout', '2s', 'nodes']);
    const tookMs = Date.now() - t0;
    expectOneLineError(r, new RegExp(`127\\.0\\.0\\.1:${deadPort}`), { quiet: true });
    // 2 s of deadline plus the start of a Node process on a busy 2-core box.
    expect(tookMs, 'gives up within --timeout').to.be.below(2000 + 4000);

    const after = await etcdSnapshot(client);
    expect(after, 'the keyspace is unchanged').to.deep.equal(before);
    // And the cluster still answers normally.
    expect((await cluster.nodes()).map((n) => n.id)).to.deep.equal(['n1']);
  });
});
