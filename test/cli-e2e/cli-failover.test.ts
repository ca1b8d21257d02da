/**
 * End to end, real processes: clusterctl given two coordinator replicas (`--coordinator a,b`,
 * CLUSTER_COORDINATOR) keeps working when the first one listed is stopped (SIGSTOP: it accepts
 * TCP but never answers) or killed (connections refused): reads, writes and a watch stream go
 * to the other replica. When both are gone, the one-line error names both.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { BIN, clusterctl, spawnNode, type RunResult } from '../helpers';
import { e2eSuite } from '../e2e/e2e-suite';
import { runContext } from '../helpers/cli-results';

function expectOk(r: RunResult): RunResult {
  expect(r.code, runContext(r)).to.equal(0);
  return r;
}

interface NodeJson { id: string; labels: Record<string, string> }

describe('cli-e2e: two coordinator replicas, the first listed stopped or killed', function () {
  this.timeout(180_000);
  const suite = e2eSuite('cli-failover');

  it('reads, writes and files go to the second replica; with both gone the error names both', async () => {
    const cluster = suite.cluster({ name: 'cli-failover' });
    const c1 = await cluster.startCoordinator({ extraArgs: ['--replica-id', 'c1'] });
    const c2 = await cluster.startCoordinator({ extraArgs: ['--replica-id', 'c2'], waitLeader: false });
    await cluster.startAgent('n1');
    await cluster.waitForNodes('n1 Discovered', (ns) => ns.length === 1 && ns[0].state === 'Discovered');
    const both = ['--coordinator', `${c1.address},${c2.address}`, '--timeout', '6s'];
    const timed = async (args: readonly string[]): Promise<{ r: RunResult; ms: number }> => {
      const t0 = Date.now();
      const r = await cluster.ctl(args);
      return { r, ms: Date.now() - t0 };
    };

    // Stopped: c1's kernel still accepts the connection, but nothing answers. The call moves on
    // after c1's share of the deadline (half of 6 s) and c2 answers.
    process.kill(c1.proc.pid, 'SIGSTOP');
    try {
      const { r, ms } = await timed([...both, 'nodes', '-o', 'json']);
      expect((JSON.parse(expectOk(r).stdout) as NodeJson[]).map((n) => n.id)).to.deep.equal(['n1']);
      expect(ms).to.be.within(2500, 6000);
    } finally {
      process.kill(c1.proc.pid, 'SIGCONT');
    }

    // Killed: the connection is refused, so the next replica is tried at once, not after c1's
    // share of --timeout (5 s of 10 s).
    await c1.kill();
    const list = await timed(['--coordinator', `${c1.address},${c2.address}`, '--timeout', '10s', 'nodes', '-o', 'json']);
    expect((JSON.parse(expectOk(list.r).stdout) as NodeJson[]).map((n) => n.id)).to.deep.equal(['n1']);
    expect(list.ms).to.be.lessThan(4000);
    expectOk(await cluster.ctl([...both, 'status']));

    // A write whose connection was refused was never sent: it goes to c2 as well.
    expectOk(await cluster.ctl([...both, 'node', 'label', 'n1', 'failover=yes']));
    const file = join(cluster.baseDir, 'motd');
    writeFileSync(file, 'hello from c2\n');
    expectOk(await cluster.ctl([...both, 'files', 'upload', file]));
    expect(expectOk(await cluster.ctl([...both, 'files', 'download', 'motd'])).stdout).to.equal('hello from c2\n');

    // The list from the environment, as an operator's shell would set it.
    const fromEnv = await clusterctl(['nodes', '-o', 'json'], { env: { ...cluster.childEnv, CLUSTER_COORDINATOR: `${c1.address},${c2.address}` } });
    const n1 = (JSON.parse(expectOk(fromEnv).stdout) as NodeJson[])[0];
    expect(n1.labels).to.include({ failover: 'yes' });

    await c2.kill();
    const gone = await cluster.ctl(['--coordinator', `${c1.address},${c2.address}`, '--timeout', '1s', 'nodes']);
    expect(gone.code, runContext(gone)).to.equal(1);
    expect(gone.stderr).to.equal(
      `error: cannot reach the coordinator at ${c1.address} or ${c2.address} within 1s (is cluster-coordinator running? set --coordinator or CLUSTER_COORDINATOR)\n`,
    );
  });

  it('nodes --watch resumes on the second replica when the first is killed, without repeating the list', async () => {
    const cluster = suite.cluster({ name: 'cli-failover-watch' });
    const c1 = await cluster.startCoordinator({ extraArgs: ['--replica-id', 'c1'] });
    const c2 = await cluster.startCoordinator({ extraArgs: ['--replica-id', 'c2'], waitLeader: false });
    await cluster.startAgent('n1');
    await cluster.waitForNodes('n1 Discovered', (ns) => ns.length === 1 && ns[0].state === 'Discovered');
    const watcher = spawnNode('nodes --watch', BIN.clusterctl, ['--coordinator', `${c1.address},${c2.address}`, 'nodes', '--watch', '-o', 'json'], { env: cluster.childEnv });
    try {
      await watcher.waitForLog(/"type":"ADDED".*"id":"n1"/, 20_000);
      await c1.kill();
      expectOk(await cluster.ctl(['--coordinator', c2.address, 'node', 'label', 'n1', 'seen-by=c2']));
      await watcher.waitForLog(/"type":"MODIFIED".*"seen-by":"c2"/, 20_000);
      expect(watcher.alive).to.equal(true);
      const lines = watcher.logs.trim().split('\n').map((l) => JSON.parse(l) as { type: string; node: NodeJson });
      expect(lines.filter((l) => l.type === 'ADDED').map((l) => l.node.id)).to.deep.equal(['n1']);
    } finally {
      await watcher.kill();
    }
  });
});
