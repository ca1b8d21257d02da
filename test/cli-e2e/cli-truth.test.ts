/**
 * End to end, real processes, through the built clusterctl: the cluster-wide variables
 * (`global get|set`) supply a bundle variable no group sets and, changed, make the node that
 * rendered them out of date until an upgrade; the manager's settings (`config get|set`) with
 * defaults, validation and -o formats; pre-registration (`discover`, `discover list|delete`);
 * --help and completion know the three commands.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { parse as parseYaml } from 'yaml';
import type { TestCluster } from '../helpers';
import { e2eSuite } from '../e2e/e2e-suite';
import { expectExit, runContext } from '../helpers/cli-results';

const BUNDLE = `name: demo
version: 1
units:
  - id: conf
    kind: file
    path: /etc/demo.conf
    content: |
      greeting={{ vars.greeting }}
    mode: "0644"
`;

describe('cli-e2e: global, config and discover through clusterctl', function () {
  this.timeout(300_000);
  const suite = e2eSuite('cli-truth');

  it('globals feed bundles and make nodes out of date; config get/set; discover, list, delete; help and completion', async () => {
    const cluster: TestCluster = suite.cluster({ name: 'cli-truth', leaseTtlSec: 3 });
    await cluster.startCoordinator();
    const root = join(cluster.baseDir, 'roots', 'n1');
    mkdirSync(root, { recursive: true });
    await cluster.startAgent('n1', { extraArgs: ['--root', root] });
    await cluster.waitForNodes('n1 Discovered', (ns) => ns.length === 1 && ns[0].state === 'Discovered');
    const bundleFile = join(cluster.baseDir, 'demo.yaml');
    writeFileSync(bundleFile, BUNDLE);

    // Globals: none yet; a set merges; a bundle variable no group sets is supplied by them.
    expect(JSON.parse(expectExit(await cluster.ctl(['global', 'get', '-o', 'json']), 0).stdout)).to.deep.include({ variables: {}, revision: '0' });
    expectExit(await cluster.ctl(['bundle', 'push', '-f', bundleFile]), 0);
    expect(expectExit(await cluster.ctl(['group', 'set', 'worker', '--bundle', 'demo@1']), 1).stderr).to.match(/uses variable that neither the bundle defines nor the group sets: greeting/);
    const set = JSON.parse(expectExit(await cluster.ctl(['global', 'set', '-e', '{"greeting":"g1"}', '-o', 'json']), 0).stdout) as { variables: Record<string, string> };
    expect(set.variables).to.deep.equal({ greeting: 'g1' });
    expect(expectExit(await cluster.ctl(['global', 'get']), 0).stdout).to.match(/^greeting +g1$/m);
    expectExit(await cluster.ctl(['group', 'set', 'worker', '--bundle', 'demo@1']), 0);
    expectExit(await cluster.ctl(['node', 'commission', 'n1', '-g', 'worker', '--wait'], 120_000), 0);
    expect(readFileSync(join(root, 'etc', 'demo.conf'), 'utf8')).to.equal('greeting=g1\n');
    const bad = expectExit(await cluster.ctl(['global', 'set', '-e', '{"greeting":null}']), 1);
    expect(bad.stderr, runContext(bad)).to.match(/^error: global variables not changed: group worker \(bundle demo@1\) would have no value for greeting/);

    // A global change makes the node out of date; an upgrade rolls it out.
    expectExit(await cluster.ctl(['global', 'set', '-e', '{"greeting":"g2"}']), 0);
    type NodeJson = { id: string; state: string; outOfDate: boolean; outOfDateReasons: string[]; preRegisteredBy: string; labels: Record<string, string> };
    const nodes = async (): Promise<NodeJson[]> => JSON.parse(expectExit(await cluster.ctl(['nodes', '-o', 'json']), 0).stdout) as NodeJson[];
    expect((await nodes())[0]).to.deep.include({ outOfDate: true, outOfDateReasons: ['vars.greeting "g1" → "g2"'] });
    expectExit(await cluster.ctl(['node', 'upgrade', 'n1', '--wait'], 120_000), 0);
    expect(readFileSync(join(root, 'etc', 'demo.conf'), 'utf8')).to.equal('greeting=g2\n');
    expect((await nodes())[0]).to.deep.include({ outOfDate: false });

    // The manager's settings: every one with its default, validated, set by the admin.
    const cfg = parseYaml(expectExit(await cluster.ctl(['config', 'get', '-o', 'yaml']), 0).stdout) as { settings: { name: string; value: string; default: string; set: boolean }[] };
    expect(cfg.settings.slice(0, 3).map((x) => [x.name, x.value, x.set])).to.deep.equal([['defaultBatch', 'all', false], ['repairPolicy', 'group', false], ['autoCommission', 'enabled', false]]);
    expect(cfg.settings.slice(3).map((x) => x.name)).to.deep.equal(['jobRetention', 'jobRetentionAge', 'eventRetention', 'historyRetention', 'historyRetentionAge']);
    const refused = expectExit(await cluster.ctl(['config', 'set', 'defaultBatch=lots']), 1);
    expect(refused.stderr.trim().split('\n'), runContext(refused)).to.have.length(1);
    expect(refused.stderr, runContext(refused)).to.match(/defaultBatch: must be all, a whole number of nodes/);
    expect(expectExit(await cluster.ctl(['config', 'set', 'repairPolicy=report', 'defaultBatch=50%']), 0).stdout).to.match(/^repairPolicy +report +set /m);
    expect(expectExit(await cluster.ctl(['config', 'get', 'repairPolicy']), 0).stdout).to.equal('report\n');
    expectExit(await cluster.ctl(['config', 'set', 'repairPolicy=']), 0);
    expect(expectExit(await cluster.ctl(['config', 'get', 'repairPolicy']), 0).stdout).to.equal('group\n');

    // Pre-registration: New until an agent matches; listed, shown, deleted.
    const made = JSON.parse(expectExit(await cluster.ctl(['discover', 'SN-NOPE-1', '--label', 'rack=r9', '-o', 'json']), 0).stdout) as NodeJson[];
    expect(made.map((n) => [n.id, n.state, n.preRegisteredBy, n.labels])).to.deep.equal([['serial-SN-NOPE-1', 'New', 'serial SN-NOPE-1', { rack: 'r9' }]]);
    expect(expectExit(await cluster.ctl(['nodes']), 0).stdout).to.match(/^serial-SN-NOPE-1 +New \(serial SN-NOPE-1\) +no /m);
    expect((JSON.parse(expectExit(await cluster.ctl(['discover', 'list', '-o', 'json']), 0).stdout) as NodeJson[]).map((n) => n.id)).to.deep.equal(['serial-SN-NOPE-1']);
    expect(expectExit(await cluster.ctl(['discover', 'list']), 0).stdout).to.match(/^serial-SN-NOPE-1 +New +serial SN-NOPE-1 +rack=r9 /m);
    expectExit(await cluster.ctl(['discover', 'not valid!']), 1);
    expect(expectExit(await cluster.ctl(['discover', 'delete', 'SN-NOPE-1']), 0).stdout).to.match(/deleted pre-registration serial-SN-NOPE-1/);
    expect((await nodes()).map((n) => n.id)).to.deep.equal(['n1']);

    // --help with examples, and completion offers the commands.
    for (const args of [['global', '--help'], ['global', 'set', '--help'], ['config', 'set', '--help'], ['discover', '--help']]) {
      expect(expectExit(await cluster.ctl(args), 0).stdout, args.join(' ')).to.match(/Example:/);
    }
    const bash = expectExit(await cluster.ctl(['completion', 'bash']), 0).stdout;
    for (const word of ['global', 'config', 'discover']) expect(bash).to.contain(word);
  });
});
