/**
 * `clusterctl apply` rolls out what the plan counts "to upgrade" (issue 13 §2): real etcd, a
 * real coordinator and two real agents, the built clusterctl as a process. A group variable
 * changed in the cluster file → plan says 2 node(s) to upgrade → apply starts one upgrade job of
 * both, which applies the new value and leaves neither out of date; a second apply starts
 * nothing; `--no-rollout` writes the configuration only; a node in maintenance is left out and
 * named. And, against etcd alone, a caller refused the rollout gets nothing written.
 */
import { expect } from 'chai';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestCluster } from '../helpers';
import { e2eSuite } from '../e2e/e2e-suite';
import { expectExit, runContext } from '../helpers/cli-results';
import { Declarative } from '../../coordinator/declarative/apply';
import { EventLog } from '../../coordinator/event-log';
import { createLogger, Keyspace, PermissionDeniedError, systemClock, type NodeRecord } from '../../shared';
import { rolloutTargets } from '../../coordinator/declarative/rollout';
import type { NodeUpgrade } from '../../coordinator/declarative/plan';

const BUNDLE = `name: web
version: "1"
variables:
  listen: "80"
units:
  - id: conf
    kind: file
    path: /etc/web.conf
    content: "listen={{ vars.listen }}\\n"
    mode: "0644"
`;

const CLUSTER = (listen: string): string => `bundles:\n  - file: web-1.yaml\ngroups:\n  web:\n    bundle: web@1\n    variables:\n      listen: "${listen}"\n`;

interface NodeJson { id: string; outOfDate: boolean; outOfDateReasons: string[] }
interface JobJson { id: string; kind: string; nodeIds: string[] }

describe('declarative: apply rolls out what the plan counts to upgrade', function () {
  this.timeout(300_000);
  const suite = e2eSuite('apply-rollout');

  it('variables change → plan 2 to upgrade → apply starts one upgrade job; again: nothing; --no-rollout: config only; a node in maintenance is skipped and named', async () => {
    const cluster: TestCluster = suite.cluster({ name: 'apply-rollout', leaseTtlSec: 3 });
    await cluster.startCoordinator();
    const roots = await cluster.startRootedAgents(['n1', 'n2']);
    await cluster.waitForNodes('n1, n2 Discovered', (ns) => ns.length === 2 && ns.every((n) => n.state === 'Discovered'));
    const conf = (id: string): string => readFileSync(join(roots[id], 'etc', 'web.conf'), 'utf8');
    const nodes = async (): Promise<NodeJson[]> => JSON.parse(expectExit(await cluster.ctl(['nodes', '-o', 'json']), 0).stdout) as NodeJson[];
    const outOfDate = async (): Promise<Record<string, boolean>> => Object.fromEntries((await nodes()).map((n) => [n.id, n.outOfDate]));
    const jobs = async (): Promise<JobJson[]> => JSON.parse(expectExit(await cluster.ctl(['jobs', '-o', 'json']), 0).stdout) as JobJson[];
    writeFileSync(join(cluster.baseDir, 'web-1.yaml'), BUNDLE);
    const file = join(cluster.baseDir, 'cluster.yaml');

    // The group, then its two members commissioned with listen=8080; no node was out of date.
    writeFileSync(file, CLUSTER('8080'));
    let r = expectExit(await cluster.ctl(['apply', '-f', file]), 0);
    expect(r.stdout, runContext(r)).to.contain('Nothing to roll out: no node is out of date.');
    expectExit(await cluster.ctl(['node', 'commission', 'n1', 'n2', '-g', 'web', '--wait'], 120_000), 0);
    expect([conf('n1'), conf('n2')]).to.deep.equal(['listen=8080\n', 'listen=8080\n']);
    const before = (await jobs()).length;

    // A variable changed in the file: plan counts both nodes; apply starts ONE upgrade job of both.
    writeFileSync(file, CLUSTER('9090'));
    r = expectExit(await cluster.ctl(['plan', '-f', file]), 2);
    expect(r.stdout, runContext(r)).to.contain('2 node(s) to upgrade');
    r = expectExit(await cluster.ctl(['apply', '-f', file, '--wait'], 120_000), 0);
    const started = /Rollout of group web: job (\S+) upgrades 2 node\(s\) to web@1: n1, n2/.exec(r.stdout);
    expect(started, runContext(r)).to.not.equal(null);
    const after = await jobs();
    expect(after, 'one new job').to.have.length(before + 1);
    expect(after.find((j) => j.id === started?.[1])).to.deep.include({ kind: 'upgrade', nodeIds: ['n1', 'n2'] });
    expect([conf('n1'), conf('n2')]).to.deep.equal(['listen=9090\n', 'listen=9090\n']);
    expect(await outOfDate()).to.deep.equal({ n1: false, n2: false });

    // Applied again: nothing to roll out, no job.
    r = expectExit(await cluster.ctl(['apply', '-f', file]), 0);
    expect(r.stdout, runContext(r)).to.contain('Nothing to apply');
    expect(r.stdout, runContext(r)).to.contain('Nothing to roll out: no node is out of date.');
    expect(await jobs()).to.have.length(before + 1);

    // --no-rollout: the group is written, the nodes stay out of date, no job; -o json says no rollout.
    writeFileSync(file, CLUSTER('7070'));
    r = expectExit(await cluster.ctl(['apply', '-f', file, '--no-rollout', '-o', 'json']), 0);
    const applied = JSON.parse(r.stdout) as { changed: boolean; rollouts?: unknown };
    expect(applied.changed, runContext(r)).to.equal(true);
    expect(applied).to.not.have.property('rollouts');
    expect(JSON.parse(expectExit(await cluster.ctl(['group', 'get', 'web', '-o', 'json']), 0).stdout)).to.deep.include({ variables: { listen: '7070' } });
    expect(await outOfDate()).to.deep.equal({ n1: true, n2: true });
    expect(await jobs()).to.have.length(before + 1);
    expect([conf('n1'), conf('n2')]).to.deep.equal(['listen=9090\n', 'listen=9090\n']);
    expect(expectExit(await cluster.ctl(['apply', '-f', file, '--no-rollout', '--wait']), 1).stderr).to.match(/--wait follows the rollout's jobs; with --no-rollout there are none/);

    // n2 in maintenance: apply (the configuration already stored) rolls out n1 and names n2.
    expectExit(await cluster.ctl(['node', 'maintenance', 'on', 'n2', '--reason', 'disk swap']), 0);
    r = expectExit(await cluster.ctl(['apply', '-f', file, '--wait'], 120_000), 0);
    expect(r.stdout, runContext(r)).to.contain('Nothing to apply');
    expect(r.stdout, runContext(r)).to.match(/Rollout of group web: job \S+ upgrades 1 node\(s\) to web@1: n1\n {2}skipped node n2: in maintenance \(disk swap\)\n/);
    expect([conf('n1'), conf('n2')]).to.deep.equal(['listen=7070\n', 'listen=9090\n']);
    expect(await outOfDate()).to.deep.equal({ n1: false, n2: true });
    expect(await jobs()).to.have.length(before + 2);
    // Only n2 is left, and it is in maintenance: no job, named again.
    r = expectExit(await cluster.ctl(['apply', '-f', file]), 0);
    expect(r.stdout, runContext(r)).to.match(/Rollout of group web: no job started, every out-of-date node is left out\n {2}skipped node n2: in maintenance \(disk swap\)\n/);
    expect(await jobs()).to.have.length(before + 2);
  });

  it('a caller who may apply but not start upgrade jobs is refused the rollout before anything is written', async () => {
    const client = suite.etcd.client();
    const ks = new Keyspace();
    const events = new EventLog({ client, keyspace: ks, clock: systemClock, logger: createLogger({ level: 'silent' }), actor: 'test' });
    let started = 0;
    const declarative = new Declarative({
      client, keyspace: ks, events, clock: systemClock,
      startJob: () => { started++; return Promise.reject(new Error('must not be called')); },
    });
    const document = 'bundles:\n  - name: web\n    version: "1"\n    units:\n      - {id: conf, kind: file, path: /etc/web.conf, content: "x"}\ngroups:\n  web: {bundle: web@1}\n';
    let refused: unknown;
    try {
      await declarative.apply({
        document, actor: 'user:ann',
        rollout: { authorize: () => { throw new PermissionDeniedError('apply rolls out the configuration with upgrade jobs, which you may not start'); } },
      });
    } catch (err) {
      refused = err;
    }
    expect(refused).to.be.instanceOf(PermissionDeniedError);
    expect(started).to.equal(0);
    const written = await client.getAll().prefix(ks.prefix).keys();
    expect(written.filter((k) => [ks.configsPrefix(), ks.groupsPrefix(), ks.lastApplied(), ks.eventsPrefix()].some((p) => k.startsWith(p)))).to.deep.equal([]);
    // The same apply without the rollout writes the configuration.
    const ok = await declarative.apply({ document, actor: 'user:ann' });
    expect(ok.changed).to.equal(true);
    expect(ok.rollouts).to.equal(undefined);
    expect(await client.get(ks.group('web')).string()).to.be.a('string');
    await events.stop();
  });
});

describe('declarative: which out-of-date nodes a rollout takes (table)', () => {
  const node = (id: string, extra: Partial<NodeRecord> = {}): { record: NodeRecord } => ({
    record: { id, state: 'Commissioned', stateChangedAt: '', reachable: true, labels: {}, maintenance: false, connected: true, createdAt: '', updatedAt: '', group: 'web', ...extra },
  });
  const up = (nodeId: string, group = 'web'): NodeUpgrade => ({ nodeId, group, from: 'web@1', to: 'web@2', reasons: ['bundle web@1 → web@2'] });
  const groups = [{ name: 'db', action: 'unchanged' as const, changes: [] }, { name: 'web', action: 'update' as const, changes: [] }, { name: 'idle', action: 'create' as const, changes: [] }];

  it('per group in file order: free nodes in the job; maintenance, a live job, a never-commissioned node skipped with why; a finished job holds nothing', () => {
    const rollouts = rolloutTargets({ groups, upgrades: [up('d1', 'db'), up('w1'), up('w2'), up('w3'), up('w4'), up('w5'), up('w6')] }, {
      nodes: [
        node('d1', { group: 'db', state: 'Upgraded' }), node('w1'), node('w2', { maintenance: true, maintenanceReason: 'disk swap' }),
        node('w3', { currentJob: 'j-live' }), node('w4', { currentJob: 'j-done', state: 'Failed' }), node('w5', { state: 'Discovered' }), node('w6', { state: 'Decommissioning' }),
      ],
      activeJobs: new Set(['j-live']),
    });
    expect(rollouts).to.deep.equal([
      { group: 'db', bundle: 'web@2', nodeIds: ['d1'], skipped: [] },
      {
        group: 'web', bundle: 'web@2', nodeIds: ['w1', 'w4'], skipped: [
          { nodeId: 'w2', reason: 'in maintenance (disk swap)' },
          { nodeId: 'w3', reason: 'in job j-live' },
          { nodeId: 'w5', reason: 'Discovered, never commissioned: nothing to upgrade (clusterctl node commission w5 -g web)' },
          { nodeId: 'w6', reason: 'Decommissioning: an upgrade cannot start from it' },
        ],
      },
    ]);
  });

  it('nothing out of date: no rollout at all', () => {
    expect(rolloutTargets({ groups, upgrades: [] }, { nodes: [node('w1')], activeJobs: new Set() })).to.deep.equal([]);
  });
});
