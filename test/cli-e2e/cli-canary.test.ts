/**
 * End to end, real processes: `clusterctl node commission --canary`, `jobs --state paused`,
 * `job describe` of a Paused job, `job watch` that keeps following through the pause,
 * `job pause` (an OK no-op on a Paused job) and `job resume`, against a real coordinator, etcd
 * and three agents with sandbox roots. Bad canary flags are one-line errors that change nothing.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { delay, etcdSnapshot, snapshotDiff, type TestCluster } from '../helpers';
import { e2eSuite } from '../e2e/e2e-suite';
import { expectExit, expectOneLineError, runContext } from '../helpers/cli-results';

const BUNDLE = `name: demo
version: 1
units:
  - id: conf
    kind: file
    path: /etc/demo.conf
    content: "demo\\n"
    mode: "0644"
`;

describe('cli-e2e: canary, pause and resume through clusterctl', function () {
  this.timeout(240_000);
  const suite = e2eSuite('cli-canary');

  it('commission --canary 1 pauses after n1; jobs/describe show Paused; job watch keeps following; pause is a no-op; resume finishes; bad flags refused', async () => {
    const cluster: TestCluster = suite.cluster({ name: 'cli-canary', leaseTtlSec: 3 });
    await cluster.startCoordinator();
    const ids = ['n1', 'n2', 'n3'];
    for (const id of ids) {
      const root = join(cluster.baseDir, 'roots', id);
      mkdirSync(root, { recursive: true });
      await cluster.startAgent(id, { extraArgs: ['--root', root] });
    }
    await cluster.waitForNodes('all Discovered', (ns) => ns.length === 3 && ns.every((n) => n.state === 'Discovered' && n.reachable));
    const file = join(cluster.baseDir, 'demo.yaml');
    writeFileSync(file, BUNDLE);
    expectExit(await cluster.ctl(['bundle', 'push', '-f', file]), 0);
    expectExit(await cluster.ctl(['group', 'set', 'worker', '--bundle', 'demo@1']), 0);

    const client = suite.etcd.client();
    const before = await etcdSnapshot(client, '/cluster/v1/jobs/');
    expectOneLineError(await cluster.ctl(['node', 'commission', ...ids, '-g', 'worker', '--canary', '-1']), /--canary.*at least 0/);
    expectOneLineError(await cluster.ctl(['node', 'commission', ...ids, '-g', 'worker', '--canary', '1', '--canary-soak', '48h']), /--canary-soak is longer than the 24h allowed/);
    expectOneLineError(await cluster.ctl(['node', 'commission', ...ids, '-g', 'worker', '--canary', '3']), /--canary 3 must be less than the job's 3 node\(s\)/);
    expectOneLineError(await cluster.ctl(['node', 'commission', ...ids, '-g', 'worker', '--canary-soak', '1m']), /--canary-soak needs --canary N/);
    expectOneLineError(await cluster.ctl(['node', 'verify', ...ids, '--canary', '1']), /unknown flag --canary/);
    expect(snapshotDiff(before, await etcdSnapshot(client, '/cluster/v1/jobs/')), 'no job written').to.deep.equal([]);
    expect(JSON.parse(expectExit(await cluster.ctl(['jobs', '-o', 'json']), 0).stdout), 'no job listed').to.deep.equal([]);
    client.close();

    const started = expectExit(await cluster.ctl(['node', 'commission', ...ids, '-g', 'worker', '--canary', '1']), 0);
    const jobId = /^job (\S+) started/.exec(started.stdout)?.[1] ?? '';
    expect(started.stdout, runContext(started)).to.contain(`it pauses after its 1 canary node(s); then: clusterctl job resume ${jobId}`);

    // Piped, job watch prints one line per state change; it must not end at Paused.
    let watchEnded = false;
    const watching = cluster.ctl(['job', 'watch', jobId], 120_000).finally(() => { watchEnded = true; });

    let paused: { id: string; state: string }[] = [];
    for (let i = 0; i < 300 && paused.length === 0; i++) {
      paused = JSON.parse(expectExit(await cluster.ctl(['jobs', '--state', 'paused', '-o', 'json']), 0).stdout) as { id: string; state: string }[];
      if (paused.length === 0) await delay(300);
    }
    expect(paused.map((j) => j.id)).to.deep.equal([jobId]);
    const table = expectExit(await cluster.ctl(['jobs']), 0).stdout;
    expect(table, table).to.match(new RegExp(`^${jobId} +commission +Paused +3 +1/3 `, 'm'));
    const described = expectExit(await cluster.ctl(['job', 'describe', jobId]), 0).stdout;
    expect(described).to.match(/^State: +Paused \(canary done on n1: check it, then resume it: clusterctl job resume /m);
    expect(described).to.match(/^Canary: +1 node\(s\) first \(batch 1\), then Paused until clusterctl job resume$/m);

    const status = JSON.parse(expectExit(await cluster.ctl(['status', '-o', 'json']), 0).stdout) as { jobsRunning: number };
    expect(status.jobsRunning, 'a Paused job is not counted as running').to.equal(0);

    await delay(3000);
    expect(watchEnded, 'job watch is still following the Paused job').to.equal(false);

    expect(expectExit(await cluster.ctl(['job', 'pause', jobId]), 0).stdout).to.match(new RegExp(`^job ${jobId} Paused: canary done on n1`));
    expect(expectExit(await cluster.ctl(['job', 'resume', 'active']), 0).stdout).to.match(new RegExp(`^job ${jobId} Running: resumed: running batch 2 of 2`));

    const watched = expectExit(await watching, 0);
    expect(watched.stdout, runContext(watched)).to.match(new RegExp(`^job ${jobId} Paused: canary done on n1`, 'm'));
    expect(watched.stdout, runContext(watched)).to.match(new RegExp(`^job ${jobId} Succeeded`, 'm'));
    expectOneLineError(await cluster.ctl(['job', 'resume', jobId]), /has already finished \(Succeeded\); nothing to resume/);
  });
});
