/**
 * The way back, through the built clusterctl against a real coordinator process, a real agent
 * and a real etcd: `node delete` refused for a node with a live agent and for a recently
 * unreachable one without --force, then removes nodes/<id> and facts/<id>; `group delete` and
 * `bundle delete` refused while in use (saying which), then done with their events; --help of
 * each shows its example; bad input (a misspelt template root, an unset variable, an unknown
 * dependency) refused when given, and `--depends-on ""` clears. Pure rules (nodeDeleteProblem) by table.
 */
import { expect } from 'chai';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { e2eSuite } from '../e2e/e2e-suite';
import { waitFor, type RunResult } from '../helpers';
import { Keyspace } from '../../shared';
import { NODE_DELETE_UNREACHABLE_MS, nodeDeleteProblem } from '../../coordinator/node-admin';

function expectOk(r: RunResult): RunResult {
  expect(r.code, `exit ${r.code}; stdout ${r.stdout.slice(0, 2000)}; stderr ${r.stderr.slice(0, 2000)}`).to.equal(0);
  return r;
}

function expectRefused(r: RunResult, match: RegExp): void {
  expect(r.code, `stdout ${r.stdout}; stderr ${r.stderr}`).to.equal(1);
  expect(r.stderr.trim()).to.match(match);
}

describe('node delete rules (table)', () => {
  const now = Date.parse('2026-12-02T12:00:00Z');
  const base = { id: 'n1', state: 'Commissioned', connected: false, reachable: false, unreachableSince: '2026-12-02T11:00:00Z' } as const;
  const o = { live: false, force: false, nowMs: now, unreachableMs: NODE_DELETE_UNREACHABLE_MS };
  const cases: [string, Parameters<typeof nodeDeleteProblem>[0], Partial<typeof o>, RegExp | undefined][] = [
    ['Decommissioned', { ...base, state: 'Decommissioned' }, {}, undefined],
    ['unreachable for an hour', base, {}, /only a Decommissioned node or one unreachable for 24 h/],
    ['unreachable for a day', { ...base, unreachableSince: '2026-12-01T11:59:00Z' }, {}, undefined],
    ['unreachable for an hour, --force', base, { force: true }, undefined],
    ['live membership, --force', { ...base, state: 'Decommissioned' }, { live: true, force: true }, /has a live agent \(it holds its membership\)/],
    ['stream open', { ...base, connected: true, reachable: true }, { force: true }, /its stream is open/],
    ['running a job, --force', { ...base, currentJob: 'j-1' }, { force: true }, /is running job j-1/],
  ];
  for (const [what, n, over, want] of cases) {
    it(what, () => {
      const got = nodeDeleteProblem(n, { ...o, ...over });
      if (want) expect(got).to.match(want);
      else expect(got).to.equal(undefined);
    });
  }
});

describe('clusterctl delete: node, group, bundle (real coordinator, agent, etcd)', function () {
  this.timeout(240_000);
  const suite = e2eSuite('cli-delete');

  it('group and bundle delete refused while in use, then done; node delete refused while live and without --force, then removes record and facts', async () => {
    const cluster = suite.cluster({ name: 'cli-delete' });
    await cluster.startCoordinator();
    const root = join(cluster.baseDir, 'root-n1');
    mkdirSync(root, { recursive: true });
    const agent = await cluster.startAgent('n1', { extraArgs: ['--root', root] });
    await cluster.waitForNodes('n1 connected', (ns) => ns.some((n) => n.id === 'n1' && n.state === 'Discovered' && n.connected === true), 60_000);

    for (const cmd of [['node', 'delete'], ['group', 'delete'], ['bundle', 'delete']]) {
      const help = expectOk(await cluster.ctl([...cmd, '--help']));
      expect(help.stdout, cmd.join(' ')).to.match(new RegExp(`clusterctl ${cmd.join(' ')} `));
    }

    const b = join(cluster.baseDir, 'motd.yaml');
    writeFileSync(b, 'name: motd\nversion: "1"\nunits:\n  - {id: motd, kind: file, path: /etc/motd, content: "hi\\n"}\n');
    expectOk(await cluster.ctl(['bundle', 'push', b]));
    expectOk(await cluster.ctl(['group', 'set', 'web', '--bundle', 'motd@1']));
    expectOk(await cluster.ctl(['node', 'commission', 'n1', '-g', 'web', '--wait'], 120_000));

    expectRefused(await cluster.ctl(['bundle', 'delete', 'motd@1']), /^error: bundle motd@1 is in use: group web; node n1 \(applied, desired\)/);
    expectRefused(await cluster.ctl(['group', 'delete', 'web']), /^error: group web has 1 node: n1 \(Commissioned\); decommission them first/);
    expectRefused(await cluster.ctl(['group', 'delete', 'web', '--force']), /cannot be deleted even with --force: n1 \(Commissioned\)/);
    expectRefused(await cluster.ctl(['node', 'delete', 'n1', '--force']), /^error: node n1 has a live agent/);

    expectOk(await cluster.ctl(['node', 'decommission', 'n1', '--wait'], 120_000));
    expectRefused(await cluster.ctl(['node', 'delete', 'n1']), /^error: node n1 has a live agent/);
    await agent.kill();
    await cluster.waitForNodes('n1 unreachable', (ns) => ns.some((n) => n.id === 'n1' && n.reachable === false && n.connected !== true), 60_000);
    // The stream signal marks it Unreachable within seconds; its membership lease (which a live
    // but partitioned agent would still renew) lasts until its TTL, and delete waits for both.
    const etcd = suite.etcd.client();
    await waitFor('n1\'s membership lease to expire', async () => (await etcd.get(new Keyspace().member('n1')).string()) === null, { timeoutMs: 60_000, intervalMs: 250 });

    // Decommissioned and its agent gone: deleted without --force.
    const del = expectOk(await cluster.ctl(['node', 'delete', 'n1']));
    expect(del.stdout).to.match(/^node n1 deleted \(was Decommissioned\); its certificate stays valid until: clusterctl node revoke n1/);
    const client = suite.etcd.client();
    const ks = new Keyspace();
    expect(await client.get(ks.node('n1')).string()).to.equal(null);
    expect(await client.get(ks.facts('n1')).string()).to.equal(null);
    expect((await cluster.nodes()).map((n) => n.id)).to.not.include('n1');
    expectRefused(await cluster.ctl(['node', 'delete', 'n1']), /^error: node n1 not found/);

    expectRefused(await cluster.ctl(['bundle', 'delete', 'motd@1']), /^error: bundle motd@1 is in use: group web;/);
    expectOk(await cluster.ctl(['group', 'delete', 'web']));
    expectOk(await cluster.ctl(['bundle', 'delete', 'motd@1']));
    expect(JSON.parse(expectOk(await cluster.ctl(['bundles', '-o', 'json'])).stdout)).to.deep.equal([]);

    const events = expectOk(await cluster.ctl(['events', '-o', 'json'])).stdout;
    for (const type of ['node.deleted', 'group.deleted', 'bundle.deleted']) expect(events).to.include(type);
  });

  it('bad input refused when given: a misspelt template root at push, an unknown --depends-on at group set; --depends-on "" clears and says so', async () => {
    const cluster = suite.cluster({ name: 'cli-bad-input' });
    await cluster.startCoordinator();
    const client = suite.etcd.client();
    const ks = new Keyspace();
    const typo = join(cluster.baseDir, 'typo.yaml');
    writeFileSync(typo, 'name: web\nversion: "1"\nunits:\n  - {id: conf, kind: file, path: /etc/web.conf, content: "listen {{ var.listen }}"}\n');
    expectRefused(await cluster.ctl(['bundle', 'push', typo]), /^error: bundle web@1 refused, nothing stored \(1 template problem\): unit conf, field content: \{\{ var\.listen \}\} names no template root/);
    expect(await client.get(ks.config('web', '1')).string()).to.equal(null);

    const good = join(cluster.baseDir, 'web.yaml');
    writeFileSync(good, 'name: web\nversion: "1"\nunits:\n  - {id: conf, kind: file, path: /etc/web.conf, content: "listen {{ vars.listen }}"}\n');
    expectOk(await cluster.ctl(['bundle', 'push', good]));
    expectRefused(await cluster.ctl(['group', 'set', 'web', '--bundle', 'web@1']), /^error: group web: bundle web@1 uses variable that neither the bundle defines nor the group sets: listen \(unit conf, field content\)/);
    expect(await client.get(ks.group('web')).string()).to.equal(null);
    expectOk(await cluster.ctl(['group', 'set', 'db', '--bundle', 'web@1', '--var', 'listen=5432']));
    expectOk(await cluster.ctl(['group', 'set', 'web', '--bundle', 'web@1', '--var', 'listen=8080', '--depends-on', 'db']));
    const before = await client.get(ks.group('web')).string();
    expectRefused(await cluster.ctl(['group', 'set', 'web', '--depends-on', 'nosuchgroup']), /^error: group web: depends on group nosuchgroup, which does not exist/);
    expect(await client.get(ks.group('web')).string()).to.equal(before);
    const cleared = expectOk(await cluster.ctl(['group', 'set', 'web', '--depends-on', '']));
    expect(cleared.stdout).to.equal('group web updated: web@1; dependency on db cleared\n');
    expect((JSON.parse(expectOk(await cluster.ctl(['group', 'show', 'web', '-o', 'json'])).stdout) as { dependsOn: string[] }).dependsOn).to.deep.equal([]);
    // Without --depends-on the dependency is kept.
    expectOk(await cluster.ctl(['group', 'set', 'web', '--depends-on', 'db']));
    expectOk(await cluster.ctl(['group', 'set', 'web', '--var', 'listen=9090']));
    expect((JSON.parse(expectOk(await cluster.ctl(['group', 'show', 'web', '-o', 'json'])).stdout) as { dependsOn: string[] }).dependsOn).to.deep.equal(['db']);
  });
});
