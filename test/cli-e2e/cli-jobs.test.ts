/**
 * End to end, real processes: clusterctl's bundle, group and job commands against a real
 * coordinator, etcd and two agents with sandbox roots (file + directory units, no systemd).
 * Bad bundles, unknown groups and bad --extra-vars change nothing; --dry-run prints the plan and
 * changes nothing; --wait takes its exit code from the job (0, and 2 when verify finds drift);
 * Contiv's spellings (--host-group, -e, job get last -j, job get active -f) work.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { parse as parseYaml } from 'yaml';
import { delay, etcdSnapshot, snapshotDiff, AGENT_OWN_KEYS, waitFor, type TestCluster } from '../helpers';
import { e2eSuite } from '../e2e/e2e-suite';
import { expectExit, expectOneLineError, runContext } from '../helpers/cli-results';

const BUNDLE = `name: demo
version: 1
variables:
  greeting: hi
units:
  - id: conf
    kind: file
    path: /etc/demo.conf
    content: |
      greeting={{ vars.greeting }}
    mode: "0644"
  - id: data-dir
    kind: directory
    path: /opt/demo
    mode: "0755"
`;

const BAD_BUNDLE = `name: demo
version: 2
units:
  - id: conf
    kind: file
    mode: 644
  - id: conf
    kind: teleport
`;

async function quietSnapshot(client: Parameters<typeof etcdSnapshot>[0]): Promise<Record<string, string>> {
  let before: Record<string, string> = {};
  await waitFor('a quiet keyspace', async () => {
    const a = await etcdSnapshot(client);
    await delay(1500);
    before = await etcdSnapshot(client);
    return JSON.stringify(a) === JSON.stringify(before);
  }, { timeoutMs: 30_000, intervalMs: 0 });
  return before;
}

describe('cli-e2e: bundles, groups and jobs through clusterctl', function () {
  this.timeout(300_000);
  const suite = e2eSuite('cli-jobs');

  it('push, group set, dry run, commission --wait, verify drift (exit 2), repair, jobs/job get/logs, bad input unchanged', async () => {
    const cluster: TestCluster = suite.cluster({ name: 'cli-jobs', leaseTtlSec: 3 });
    await cluster.startCoordinator();
    const roots = await cluster.startRootedAgents(['n1', 'n2']);
    await cluster.waitForNodes('both Discovered', (ns) => ns.length === 2 && ns.every((n) => n.state === 'Discovered' && n.reachable));
    const files = join(cluster.baseDir, 'files');
    mkdirSync(files);
    writeFileSync(join(files, 'demo.yaml'), BUNDLE);
    writeFileSync(join(files, 'bad.yaml'), BAD_BUNDLE);
    writeFileSync(join(files, 'broken.yaml'), 'name: demo\nversion: [1\n');
    const client = suite.etcd.client();

    // Bad input first: every problem, nothing stored.
    let before = await quietSnapshot(client);
    const bad = expectExit(await cluster.ctl(['bundle', 'push', '-f', join(files, 'bad.yaml')]), 1);
    const problems = bad.stderr.trim().split('\n');
    expect(problems[0], runContext(bad)).to.match(/^error: invalid bundle .*bad\.yaml \(\d+ problems; nothing was stored\):$/);
    expect(bad.stderr, runContext(bad)).to.match(/units\[0\]\.path/);
    expect(bad.stderr, runContext(bad)).to.match(/units\[1\]/);
    expect(problems.length, runContext(bad)).to.be.at.least(3);
    expectOneLineError(await cluster.ctl(['bundle', 'push', '-f', join(files, 'broken.yaml')]), /not valid YAML/);
    expectOneLineError(await cluster.ctl(['bundle', 'push', '-f', join(files, 'missing.yaml')]), /cannot read bundle file .*missing\.yaml: no such file/);
    expectOneLineError(await cluster.ctl(['group', 'set', 'worker', '--bundle', 'nosuch@1']), /nosuch/);
    expectOneLineError(await cluster.ctl(['node', 'commission', 'n1', '-g', 'nogroup']), /nogroup/);
    expectOneLineError(await cluster.ctl(['node', 'commission', 'n1', '-g', 'worker', '-e', '{not json']), /--extra-vars is not JSON/);
    expectOneLineError(await cluster.ctl(['node', 'commission', 'n1', '-g', 'worker', '-e', '[1,2]']), /must be a JSON object/);
    expectOneLineError(await cluster.ctl(['node', 'commission', 'n1', '--batch', '0']), /--batch "0"/);
    expectOneLineError(await cluster.ctl(['node', 'commission']), /which nodes\?/);
    expectOneLineError(await cluster.ctl(['node', 'commission', 'n1', '--bogus']), /unknown flag --bogus/);
    expectOneLineError(await cluster.ctl(['job', 'describe', 'no-such-job']), /no-such-job/);
    expect(snapshotDiff(before, await etcdSnapshot(client), { ignorePrefixes: AGENT_OWN_KEYS }), 'bad input changed nothing').to.deep.equal([]);

    // Push (twice: idempotent), list, show.
    const pushed = JSON.parse(expectExit(await cluster.ctl(['bundle', 'push', '-f', join(files, 'demo.yaml'), '-o', 'json']), 0).stdout) as { name: string; version: string; units: number };
    expect(pushed).to.include({ name: 'demo', version: '1', units: 2 });
    expect(expectExit(await cluster.ctl(['bundle', 'push', '-f', join(files, 'demo.yaml')]), 0).stdout).to.match(/^bundle demo@1 stored/);
    const bundles = JSON.parse(expectExit(await cluster.ctl(['bundles', '-o', 'json']), 0).stdout) as { name: string; version: string }[];
    expect(bundles.map((b) => `${b.name}@${b.version}`)).to.deep.equal(['demo@1']);
    const shown = parseYaml(expectExit(await cluster.ctl(['bundle', 'show', 'demo@1', '-o', 'yaml']), 0).stdout) as { bundle: { units: { id: string }[] } };
    expect(shown.bundle.units.map((u) => u.id)).to.deep.equal(['conf', 'data-dir']);
    expect(expectExit(await cluster.ctl(['bundles']), 0).stdout).to.match(/^NAME +VERSION +UNITS +AGE\ndemo +1 +2 /);

    // Group: create with the newest version, then change one field.
    const g = JSON.parse(expectExit(await cluster.ctl(['group', 'set', 'worker', '--bundle', 'demo', '--var', 'greeting=hello', '-o', 'json']), 0).stdout) as { bundle: string; version: string; variables: Record<string, string> };
    expect(g).to.deep.include({ bundle: 'demo', version: '1', variables: { greeting: 'hello' } });
    expectExit(await cluster.ctl(['group', 'set', 'worker', '--min-size', '1']), 0);
    const gy = parseYaml(expectExit(await cluster.ctl(['group', 'show', 'worker', '-o', 'yaml']), 0).stdout) as { minSize: number; variables: Record<string, string> };
    expect(gy).to.deep.include({ minSize: 1, variables: { greeting: 'hello' } });
    expect((JSON.parse(expectExit(await cluster.ctl(['groups', '-o', 'json']), 0).stdout) as { name: string }[]).map((x) => x.name)).to.deep.equal(['worker']);

    // Dry run: the plan per node and unit, exit 2 (changes), nothing applied, no state change.
    const dry = expectExit(await cluster.ctl(['node', 'commission', 'n1', '-g', 'worker', '--dry-run'], 120_000), 2);
    expect(dry.stdout, runContext(dry)).to.match(/^dry run of commission/);
    expect(dry.stdout, runContext(dry)).to.match(/^n1 +conf +/m);
    expect(dry.stdout, runContext(dry)).to.match(/^n1 +data-dir +/m);
    expect(() => readFileSync(join(roots.n1, 'etc', 'demo.conf'))).to.throw();
    expect((await cluster.node('n1'))?.state).to.equal('Discovered');

    // Commission with Contiv's spellings; --wait: exit 0 when it succeeded; -e reaches the template.
    const com = expectExit(await cluster.ctl(['node', 'commission', 'n1', 'n2', '--host-group', 'worker', '-e', '{"greeting":"contiv"}', '--wait'], 180_000), 0);
    expect(com.stdout, runContext(com)).to.match(/job \S+ node n1 succeeded/);
    expect(com.stdout, runContext(com)).to.match(/job \S+ Succeeded/);
    expect(readFileSync(join(roots.n1, 'etc', 'demo.conf'), 'utf8')).to.equal('greeting=contiv\n');
    expect((await cluster.nodes()).map((n) => [n.id, n.state])).to.deep.equal([['n1', 'Commissioned'], ['n2', 'Commissioned']]);

    // Jobs list / job get last -j / describe / logs.
    const jobs = JSON.parse(expectExit(await cluster.ctl(['jobs', '-o', 'json']), 0).stdout) as { id: string; kind: string; state: string; dryRun: boolean }[];
    const commission = jobs.find((j) => j.kind === 'commission' && !j.dryRun);
    expect(commission?.state).to.equal('Succeeded');
    expect(jobs.some((j) => j.dryRun)).to.equal(true);
    const last = JSON.parse(expectExit(await cluster.ctl(['job', 'get', 'last', '-j']), 0).stdout) as { job: { id: string }; nodes: { nodeId: string; state: string }[] };
    expect(last.job.id).to.equal(commission?.id);
    expect(last.nodes.map((n) => [n.nodeId, n.state])).to.deep.equal([['n1', 'succeeded'], ['n2', 'succeeded']]);
    expect(expectExit(await cluster.ctl(['job', 'describe', String(commission?.id)]), 0).stdout).to.match(/^State: +Succeeded/m);
    expect((JSON.parse(expectExit(await cluster.ctl(['jobs', '--state', 'succeeded', '-o', 'json']), 0).stdout) as { state: string }[]).every((j) => j.state === 'Succeeded')).to.equal(true);
    const logs = expectExit(await cluster.ctl(['job', 'logs', 'last']), 0).stdout;
    expect(logs).to.match(/^==> n1 \(succeeded\) <==$/m);
    expectOneLineError(await cluster.ctl(['job', 'logs', 'last', '--node', 'n9']), /node n9 is not in job/);
    // A finished job: following it ends at once with its result.
    expectExit(await cluster.ctl(['job', 'watch', String(commission?.id)]), 0);

    // Desired, applied and drift (docs/operations.md): the -e value is part of what was applied,
    // so verify finds no drift (exit 0) and repair re-applies it; the node is out of date
    // against its group (nodes: demo@1*, outOfDate with the reason) until an upgrade without -e.
    expectExit(await cluster.ctl(['node', 'verify', 'n1', '--wait'], 120_000), 0);
    type NodeJson = { id: string; outOfDate: boolean; outOfDateReasons: string[]; appliedVariables: Record<string, string>; appliedExtraVars: string[] };
    const nodesJson = async (): Promise<NodeJson[]> => JSON.parse(expectExit(await cluster.ctl(['nodes', '-o', 'json']), 0).stdout) as NodeJson[];
    const n1Json = (await nodesJson()).find((n) => n.id === 'n1');
    expect(n1Json, 'n1 is out of date').to.deep.include({ outOfDate: true, outOfDateReasons: ['vars.greeting "contiv" → "hello" (applied with -e)'], appliedExtraVars: ['greeting'] });
    expect(n1Json?.appliedVariables).to.deep.equal({ greeting: 'contiv' });
    expect(expectExit(await cluster.ctl(['nodes']), 0).stdout, 'the table marks it').to.match(/^n1 +Commissioned +yes +worker +demo@1\* /m);
    writeFileSync(join(roots.n1, 'etc', 'demo.conf'), 'tampered\n');
    expectExit(await cluster.ctl(['node', 'verify', 'n1', '--repair', '--wait'], 120_000), 0);
    expect(readFileSync(join(roots.n1, 'etc', 'demo.conf'), 'utf8'), 'repair re-applies what was applied').to.equal('greeting=contiv\n');
    expectExit(await cluster.ctl(['node', 'upgrade', 'n1', '--wait'], 120_000), 0);
    expect(readFileSync(join(roots.n1, 'etc', 'demo.conf'), 'utf8'), 'the upgrade rolls out the group\'s value').to.equal('greeting=hello\n');
    expect((await nodesJson()).find((n) => n.id === 'n1'), 'up to date after the upgrade').to.deep.include({ outOfDate: false, outOfDateReasons: [], appliedExtraVars: [] });
    // A group variable change makes its nodes out of date (the plan's "to upgrade" uses the same rule).
    expectExit(await cluster.ctl(['group', 'set', 'worker', '--var', 'greeting=howdy']), 0);
    expect((await nodesJson()).map((n) => [n.id, n.outOfDate, n.outOfDateReasons])).to.deep.equal([
      ['n1', true, ['vars.greeting "hello" → "howdy"']], ['n2', true, ['vars.greeting "contiv" → "howdy" (applied with -e)']],
    ]);
    expectExit(await cluster.ctl(['node', 'upgrade', '-g', 'worker', '--wait'], 120_000), 0);
    expect((await nodesJson()).map((n) => n.outOfDate)).to.deep.equal([false, false]);
    // A tampered file is drift (exit 2), and the job's state says so.
    writeFileSync(join(roots.n1, 'etc', 'demo.conf'), 'tampered\n');
    const drift = expectExit(await cluster.ctl(['node', 'verify', 'n1', '--wait', '-o', 'json'], 120_000), 2);
    const lastLine = JSON.parse(drift.stdout.trim().split('\n').pop() ?? '{}') as { job: { driftedNodes: string[] }; nodes: { drift: unknown }[] };
    expect(lastLine.nodes[0].drift, runContext(drift)).to.not.equal(null);
    expect(lastLine.job.driftedNodes, runContext(drift)).to.deep.equal(['n1']);
    const described = expectExit(await cluster.ctl(['job', 'describe', 'last']), 0).stdout;
    expect(described).to.match(/^State: +Succeeded \(drift on 1 node\) \(1 of 1 node\(s\) succeeded; drift on 1 node\(s\): n1\)$/m);
    const watched = expectExit(await cluster.ctl(['job', 'watch', 'last']), 2).stdout;
    expect(watched).to.match(/Succeeded \(drift on 1 node\)/);
    expect(watched).to.match(/^job \S+ node n1 succeeded \(drift: units \S+\)$/m);

    // Maintenance makes a job refuse, naming what --force overrides; nothing changes.
    expectExit(await cluster.ctl(['node', 'maintenance', 'on', 'n2']), 0);
    before = await quietSnapshot(client);
    expectOneLineError(await cluster.ctl(['node', 'upgrade', 'n2']), /maintenance.*--force/);
    // The agents' member rewrites after the upgrades above (a minute or two later) are theirs, not the refused job's.
    expect(snapshotDiff(before, await etcdSnapshot(client), { ignorePrefixes: AGENT_OWN_KEYS }), 'a refused job changed nothing').to.deep.equal([]);
    expectOneLineError(await cluster.ctl(['job', 'cancel', String(commission?.id)]), /./);
  });
});
