/**
 * The lifecycle on booted Linux nodes (scripts/fleet): systemd as PID 1 under systemd-nspawn, the
 * agent installed from the project's .deb with apt-get and run by the node's systemd, etcd and the
 * coordinator in the hub namespace. Each check is made on the node itself (systemctl, dpkg -s, the
 * files), not only through the coordinator.
 *
 * Budget: the base root is cached in $FLEET_CACHE (default /var/cache/cluster-fleet); on a clean
 * machine the first debootstrap is part of this file's time. Measured on 2 shared cores: 4 min 7 s
 * from an empty cache (debootstrap 73 s), 2.5-3 min with the cache.
 * Needs root, systemd-nspawn and debootstrap (installed with apt-get when missing), etcd.
 */
import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PKI_FILES } from '../../coordinator/pki/pki-dir';
import { Fleet, type CtlNodeView } from '../../scripts/lib/fleet';
import { up } from '../../scripts/fleet';
import { REPO_ROOT, run, waitFor } from '../helpers';
import { debName } from '../packaging/package-build';

const VERSION = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const UPGRADE_VERSION = `${VERSION}.1`;
const GROUP = 'fleet';
const BUNDLE = 'fleet-app';

/** A tiny .deb for the local apt repository: /usr/bin/fleet-demo, a daemon that only sleeps. */
async function buildDemoPackage(dir: string, work: string): Promise<void> {
  const tree = join(work, 'fleet-demo');
  mkdirSync(join(tree, 'DEBIAN'), { recursive: true });
  mkdirSync(join(tree, 'usr/bin'), { recursive: true });
  writeFileSync(join(tree, 'DEBIAN/control'), 'Package: fleet-demo\nVersion: 1.0-1\nArchitecture: all\nMaintainer: test <test@localhost>\n'
    + 'Description: demo daemon of the fleet test\n');
  writeFileSync(join(tree, 'usr/bin/fleet-demo'), '#!/bin/sh\n# reads its config once, then sleeps\ncat /opt/fleet-app/app.conf\nexec sleep infinity\n');
  chmodSync(join(tree, 'usr/bin/fleet-demo'), 0o755);
  const deb = join(dir, 'fleet-demo_1.0-1_all.deb');
  const r = await run('dpkg-deb', ['--root-owner-group', '--build', tree, deb]);
  if (r.code !== 0) throw new Error(`dpkg-deb: ${r.stderr}`);
  // A flat repository: the control fields plus Filename, Size and SHA256, in Packages.
  const control = (await run('dpkg-deb', ['-f', deb])).stdout.trimEnd();
  const bytes = readFileSync(deb);
  writeFileSync(join(dir, 'Packages'), `${control}\nFilename: ./fleet-demo_1.0-1_all.deb\nSize: ${bytes.length}\n`
    + `SHA256: ${createHash('sha256').update(bytes).digest('hex')}\n\n`);
}

/** Bundle `version`; `slowSeconds` adds a command that takes that long (a window for a power cut). */
function bundleYaml(version: number, port: number, slowSeconds = 0): string {
  const slow = slowSeconds === 0 ? '' : `  - id: settle
    kind: command
    run: sleep ${slowSeconds} && touch /opt/fleet-app/.settled
    creates: /opt/fleet-app/.settled
    undo: rm -f /opt/fleet-app/.settled
`;
  return `name: ${BUNDLE}
version: "${version}"
variables:
  port: ${port}
units:
  - id: apt-source
    kind: file
    path: /etc/apt/sources.list.d/fleet-local.list
    content: "deb [trusted=yes] file:/fleet/repo ./\\n"
    mode: "0644"
  - id: apt-update
    kind: command
    run: apt-get update -q -o Dir::Etc::sourcelist=sources.list.d/fleet-local.list -o Dir::Etc::sourceparts=-
    unless: apt-cache show fleet-demo
  - id: demo-pkg
    kind: package
    name: fleet-demo
  - id: app-dir
    kind: directory
    path: /opt/fleet-app
    mode: "0755"
  - id: app-conf
    kind: file
    path: /opt/fleet-app/app.conf
    content: |
      port = {{ vars.port }}
    mode: "0644"
  - id: app-service
    kind: systemd
    unit: fleet-app.service
    content: |
      [Unit]
      Description=fleet test daemon
      [Service]
      ExecStart=/usr/bin/fleet-demo
      [Install]
      WantedBy=multi-user.target
    enabled: true
    state: running
    restartWhenChanged: [app-conf]
  - id: marker
    kind: command
    run: touch /opt/fleet-app/.initialised
    creates: /opt/fleet-app/.initialised
    undo: rm -f /opt/fleet-app/.initialised
${slow}verify:
  - id: app-active
    systemdActive: fleet-app.service
`;
}

describe('fleet: booted nodes (systemd-nspawn), the agent from the .deb under the node\'s systemd', function () {
  this.timeout(120_000);
  let tmp: string;
  let fleet: Fleet;
  let names: string[];
  const id = (n: string): string => fleet.nodeId(n);
  const ctl = (args: string[], timeoutMs = 120_000): { code: number; stdout: string; stderr: string } => fleet.clusterctl(args, timeoutMs);
  const mustCtl = (args: string[], timeoutMs = 120_000): string => {
    const r = ctl(args, timeoutMs);
    if (r.code !== 0) throw new Error(`clusterctl ${args.join(' ')} failed (${r.code}): ${r.stderr}${r.stdout}`);
    return r.stdout;
  };
  const view = (n: string): CtlNodeView => {
    const v = fleet.nodes().find((x) => x.id === id(n));
    if (!v) throw new Error(`${n} not in clusterctl nodes`);
    return v;
  };
  const sh = (n: string, script: string): { code: number; stdout: string } => fleet.exec(n, ['sh', '-c', script], { timeoutMs: 60_000 });

  before(async function () {
    this.timeout(420_000);
    if (process.getuid?.() !== 0) throw new Error('test/fleet needs root (network namespaces, overlay mounts, systemd-nspawn)');
    for (const [tool, pkg] of [['systemd-nspawn', 'systemd-container'], ['debootstrap', 'debootstrap']]) {
      if ((await run('sh', ['-c', `command -v ${tool}`])).code !== 0) {
        const r = await run('apt-get', ['install', '-y', pkg], { timeoutMs: 300_000 });
        if (r.code !== 0) throw new Error(`apt-get install ${pkg} failed: ${r.stderr}`);
      }
    }
    tmp = mkdtempSync(join(tmpdir(), 'fleet-test-'));
    const debs = join(tmp, 'debs');
    for (const v of [VERSION, UPGRADE_VERSION]) {
      const r = await run(join(REPO_ROOT, 'scripts/build-deb'), ['--no-build', '--version', v, '--out', debs, ...(v === VERSION ? [] : ['agent'])], { cwd: REPO_ROOT, timeoutMs: 300_000 });
      if (r.code !== 0) throw new Error(`build-deb ${v}: ${r.stderr.slice(-2000)}`);
    }
    fleet = new Fleet({ dir: join(tmp, 'fleet'), cacheDir: process.env.FLEET_CACHE ?? '/var/cache/cluster-fleet', name: 'ftest', log: () => undefined });
    const t0 = Date.now();
    await up(fleet, { nodes: 3, deb: join(debs, `cluster-agent_${VERSION}-1_all.deb`), leaseTtl: 6, waitTimeoutMs: 120_000 });
    process.stderr.write(`      (fleet up, 3 nodes Discovered: ${((Date.now() - t0) / 1000).toFixed(1)} s)\n`);
    fleet.copyToShare(join(debs, `cluster-agent_${UPGRADE_VERSION}-1_all.deb`));
    fleet.copyToShare(join(debs, debName('cluster-coordinator', VERSION)));
    mkdirSync(join(fleet.shareDir, 'repo'));
    await buildDemoPackage(join(fleet.shareDir, 'repo'), tmp);
    names = fleet.nodeNames();
  });

  after(async function () {
    this.timeout(120_000);
    if (fleet) {
      const problems = await fleet.down();
      if (problems.length > 0) throw new Error(`fleet down: ${problems.join('; ')}`);
      expect(existsSync('/run/netns/ftest-hub')).to.equal(false);
    }
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('each node runs cluster-agent.service under its own systemd (PID 1), installed by dpkg, and is Discovered with its facts', () => {
    for (const n of names) {
      expect(fleet.mustExec(n, ['cat', '/proc/1/comm']).trim()).to.equal('systemd');
      expect(fleet.exec(n, ['systemctl', 'is-active', 'cluster-agent']).stdout.trim()).to.equal('active');
      expect(fleet.exec(n, ['systemctl', 'is-enabled', 'cluster-agent']).stdout.trim()).to.equal('enabled');
      expect(fleet.mustExec(n, ['dpkg-query', '-W', '-f', '${Status} ${Version}', 'cluster-agent'])).to.equal(`install ok installed ${VERSION}-1`);
      // The certificate the agent got with the join token is kept in its state dir.
      expect(sh(n, 'ls /var/lib/cluster-agent/pki').stdout).to.match(/\.crt/);
      const v = view(n);
      expect(v.state).to.equal('Discovered');
      expect(v.reachable).to.equal(true);
      expect(v.agentVersion).to.equal(VERSION);
      expect(v.bootId).to.equal(fleet.bootId(n));
    }
    const facts = JSON.parse(mustCtl(['node', 'describe', id('n1'), '-j'])) as { facts: { hostname: string; os: { distro: string }; runtime?: { init: string; systemdVersion: string; virtualization: string; virtualizationType: string } } };
    expect(facts.facts.hostname).to.equal('n1');
    expect(facts.facts.os.distro).to.match(/Debian/);
    expect(facts.facts.runtime).to.deep.include({ init: 'systemd', virtualization: 'systemd-nspawn', virtualizationType: 'container' });
    expect(facts.facts.runtime?.systemdVersion).to.match(/^\d{3}/);
  });

  it('commissions 3 nodes: file, directory, apt package from a local repository, system-manager service, guarded command', async function () {
    this.timeout(240_000);
    writeFileSync(join(tmp, 'bundle-1.yaml'), bundleYaml(1, 8080));
    writeFileSync(join(fleet.shareDir, 'bundle-1.yaml'), bundleYaml(1, 8080));
    mustCtl(['bundle', 'push', '-f', join(tmp, 'bundle-1.yaml')]);
    mustCtl(['group', 'set', GROUP, '--bundle', `${BUNDLE}@1`, '--repair-policy', 'repair']);
    mustCtl(['node', 'commission', ...names.map(id), '-g', GROUP, '--wait'], 200_000);
    for (const n of names) {
      expect(view(n).state).to.equal('Commissioned');
      expect(fleet.mustExec(n, ['cat', '/opt/fleet-app/app.conf'])).to.equal('port = 8080\n');
      expect(sh(n, 'test -d /opt/fleet-app && stat -c %a /opt/fleet-app').stdout.trim()).to.equal('755');
      expect(fleet.mustExec(n, ['dpkg-query', '-W', '-f', '${Status} ${Version}', 'fleet-demo'])).to.equal('install ok installed 1.0-1');
      expect(existsSync(join(fleet.node(n).root, 'etc/systemd/system/fleet-app.service'))).to.equal(true);
      expect(fleet.exec(n, ['systemctl', 'is-enabled', 'fleet-app']).stdout.trim()).to.equal('enabled');
      expect(fleet.exec(n, ['systemctl', 'is-active', 'fleet-app']).stdout.trim()).to.equal('active');
      expect(sh(n, 'test -f /opt/fleet-app/.initialised').code).to.equal(0);
    }
  });

  it('a config change restarts the service on the system manager (upgrade to bundle 2)', async function () {
    this.timeout(180_000);
    const pid = (n: string): string => fleet.mustExec(n, ['systemctl', 'show', '-p', 'MainPID', '--value', 'fleet-app']).trim();
    const before = Object.fromEntries(names.map((n) => [n, pid(n)]));
    writeFileSync(join(tmp, 'bundle-2.yaml'), bundleYaml(2, 9090));
    mustCtl(['bundle', 'push', '-f', join(tmp, 'bundle-2.yaml')]);
    mustCtl(['group', 'set', GROUP, '--bundle', `${BUNDLE}@2`]);
    mustCtl(['node', 'upgrade', '-g', GROUP, '--wait'], 150_000);
    for (const n of names) {
      expect(fleet.mustExec(n, ['cat', '/opt/fleet-app/app.conf'])).to.equal('port = 9090\n');
      expect(fleet.exec(n, ['systemctl', 'is-active', 'fleet-app']).stdout.trim()).to.equal('active');
      expect(pid(n)).to.not.equal(before[n]);
      expect(fleet.mustExec(n, ['journalctl', '-u', 'fleet-app', '-o', 'cat', '--no-pager'])).to.contain('port = 9090');
    }
  });

  it('a node rebooted with a file changed while it was down: new boot id, the agent restarts under systemd, drift reported and repaired', async function () {
    this.timeout(180_000);
    const n = 'n2';
    const oldBoot = fleet.bootId(n);
    await fleet.shutdown(n);
    // Edited on the powered-off machine's disk.
    writeFileSync(join(fleet.node(n).root, 'opt/fleet-app/app.conf'), 'port = 1\n');
    fleet.poweron(n);
    await fleet.waitBooted(n);
    const newBoot = fleet.bootId(n);
    expect(newBoot).to.not.equal(oldBoot);
    await waitFor('the agent to come back under systemd', () => fleet.exec(n, ['systemctl', 'is-active', 'cluster-agent']).stdout.trim() === 'active', { timeoutMs: 60_000 });
    await waitFor('the coordinator to see the new boot id', () => view(n).bootId === newBoot && view(n).reachable, { timeoutMs: 60_000, intervalMs: 1000 });
    const events = await waitFor('node.drift for the edited file', () => {
      const out = mustCtl(['events', '--node', id(n), '-o', 'json']);
      return /node\.drift/.test(out) && /app-conf/.test(out) ? out : undefined;
    }, { timeoutMs: 90_000, intervalMs: 1000 });
    expect(events).to.match(/node\.drift/);
    await waitFor('the repair policy to restore the file', () => fleet.exec(n, ['cat', '/opt/fleet-app/app.conf']).stdout === 'port = 9090\n', { timeoutMs: 90_000, intervalMs: 1000 });
    expect(fleet.exec(n, ['systemctl', 'is-active', 'fleet-app']).stdout.trim()).to.equal('active');
  });

  it('fleet reboot (systemctl reboot inside the node): new boot id, agent restarted by systemd, re-verified, state unchanged', async function () {
    this.timeout(150_000);
    const n = 'n3';
    const oldBoot = fleet.bootId(n);
    const stateBefore = view(n).state;
    fleet.reboot(n);
    await waitFor('n3 to reboot', () => {
      const r = fleet.exec(n, ['cat', '/proc/sys/kernel/random/boot_id'], { timeoutMs: 5000 });
      return r.code === 0 && r.stdout.trim() !== oldBoot;
    }, { timeoutMs: 90_000, intervalMs: 500 });
    await fleet.waitBooted(n);
    const newBoot = fleet.bootId(n);
    await waitFor('the coordinator to see n3 back with its new boot id', () => view(n).bootId === newBoot && view(n).reachable, { timeoutMs: 60_000, intervalMs: 1000 });
    await waitFor('a verify of the new boot', () => /node\.(verified|drift)/.test(mustCtl(['events', '--node', id(n), '-o', 'json']).split(newBoot)[1] ?? '')
      || /node\.reverify[^]*node\.verified/.test(mustCtl(['events', '--node', id(n), '-o', 'json'])), { timeoutMs: 90_000, intervalMs: 1000 });
    expect(view(n).state).to.equal(stateBefore);
    expect(fleet.exec(n, ['systemctl', 'is-active', 'fleet-app']).stdout.trim()).to.equal('active');
  });

  it('a 20 s partition: Unreachable, then Reachable after heal, lifecycle state unchanged', async function () {
    this.timeout(120_000);
    const n = 'n1';
    const stateBefore = view(n).state;
    const t0 = Date.now();
    fleet.partition(n);
    try {
      await waitFor('n1 Unreachable', () => !view(n).reachable, { timeoutMs: 20_000, intervalMs: 500 });
      const left = 20_000 - (Date.now() - t0);
      if (left > 0) await new Promise((r) => setTimeout(r, left));
      expect(view(n).reachable).to.equal(false);
    } finally {
      fleet.heal(n);
    }
    await waitFor('n1 Reachable again', () => view(n).reachable, { timeoutMs: 60_000, intervalMs: 500 });
    expect(view(n).state).to.equal(stateBefore);
    expect(fleet.exec(n, ['systemctl', 'is-active', 'cluster-agent']).stdout.trim()).to.equal('active');
  });

  it('upgrades the agent package on a running node: the service restarts, state survives, the coordinator sees the new version', async function () {
    this.timeout(120_000);
    const n = 'n1';
    const stateBefore = view(n).state;
    const pidBefore = fleet.mustExec(n, ['systemctl', 'show', '-p', 'MainPID', '--value', 'cluster-agent']).trim();
    const recordBefore = statSync(join(fleet.node(n).root, 'var/lib/cluster-agent')).ino;
    fleet.mustExec(n, ['apt-get', 'install', '-y', '-q', `/fleet/cluster-agent_${UPGRADE_VERSION}-1_all.deb`], { timeoutMs: 120_000 });
    await waitFor('cluster-agent restarted', () => {
      const pid = fleet.exec(n, ['systemctl', 'show', '-p', 'MainPID', '--value', 'cluster-agent']).stdout.trim();
      return pid !== '0' && pid !== pidBefore;
    }, { timeoutMs: 60_000, intervalMs: 500 });
    await waitFor('the new agent version in clusterctl nodes', () => view(n).agentVersion === UPGRADE_VERSION && view(n).reachable, { timeoutMs: 60_000, intervalMs: 1000 });
    expect(statSync(join(fleet.node(n).root, 'var/lib/cluster-agent')).ino).to.equal(recordBefore);
    expect(view(n).state).to.equal(stateBefore);
    // Its conffile (the fleet's edit of agent.yaml) is kept.
    expect(fleet.mustExec(n, ['cat', '/etc/cluster/agent.yaml'])).to.contain('written by scripts/fleet');
  });

  it('decommission stops and disables the service, removes the package and the files', async function () {
    this.timeout(180_000);
    mustCtl(['node', 'decommission', ...names.map(id), '--wait'], 150_000);
    for (const n of names) {
      expect(view(n).state).to.equal('Decommissioned');
      expect(fleet.exec(n, ['systemctl', 'is-active', 'fleet-app']).stdout.trim()).to.not.equal('active');
      expect(existsSync(join(fleet.node(n).root, 'etc/systemd/system/fleet-app.service'))).to.equal(false);
      expect(fleet.exec(n, ['dpkg-query', '-W', '-f', '${db:Status-Status}', 'fleet-demo']).stdout).to.not.equal('installed');
      expect(existsSync(join(fleet.node(n).root, 'opt/fleet-app/app.conf'))).to.equal(false);
      expect(existsSync(join(fleet.node(n).root, 'opt/fleet-app/.initialised'))).to.equal(false);
      expect(existsSync(join(fleet.node(n).root, 'etc/apt/sources.list.d/fleet-local.list'))).to.equal(false);
      // The agent itself keeps running: decommission takes the node out of service, not off the cluster.
      expect(fleet.exec(n, ['systemctl', 'is-active', 'cluster-agent']).stdout.trim()).to.equal('active');
    }
  });

  it('a power cut during a rolling commission: Unreachable, the job follows its failure rules, the node comes back, nothing left in a *-ing state', async function () {
    this.timeout(240_000);
    writeFileSync(join(tmp, 'bundle-3.yaml'), bundleYaml(3, 9090, 6));
    mustCtl(['bundle', 'push', '-f', join(tmp, 'bundle-3.yaml')]);
    mustCtl(['group', 'set', GROUP, '--bundle', `${BUNDLE}@3`]);
    // Followed by its id: the returning node can get a newer job of its own (drift watcher), so "last" is not this one.
    const jobId = (JSON.parse(mustCtl(['node', 'commission', ...names.map(id), '-g', GROUP, '--batch', '1', '--max-failures', '1', '-o', 'json'])) as { id: string }).id;
    const victim = await waitFor('a node in Commissioning', () => names.find((n) => view(n).state === 'Commissioning'), { timeoutMs: 60_000, intervalMs: 250 });
    fleet.poweroff(victim);
    await waitFor(`${victim} Unreachable`, () => !view(victim).reachable, { timeoutMs: 30_000, intervalMs: 500 });
    // Power back on while the job still waits for it: the agent returns with a new boot id, so
    // the command it was running is not re-sent (it would run twice) and the node fails.
    fleet.poweron(victim);
    await fleet.waitBooted(victim);
    type JobView = { job: { state: string; counts: Record<string, number> }; nodes: { nodeId: string; state: string; error: string }[] };
    const described = await waitFor('the rolling job to end', () => {
      const d = JSON.parse(mustCtl(['job', 'describe', jobId, '-o', 'json'])) as JobView;
      return ['Succeeded', 'Failed', 'Cancelled', 'RolledBack'].includes(d.job.state) ? d : undefined;
    }, { timeoutMs: 120_000, intervalMs: 1000 });
    // max-failures 1: the job ends Succeeded whatever happened to the cut node. That node either
    // failed (Unreachable mid-command: the stream signal fails it at once, the outcome unknown;
    // or its agent came back with a new boot id while the command ran: not re-sent) or, when
    // the cut came before the command reached it, got the command on its new boot and succeeded.
    const entry = described.nodes.find((e) => e.nodeId === id(victim));
    const detail = JSON.stringify(entry);
    expect(described.job.state, detail).to.equal('Succeeded');
    if (entry?.state === 'failed') {
      // Or the node's own shutdown reached the command first: the agent saw systemd leave the
      // bus mid-apply and reported that failure before it was stopped (seen in CI).
      expect(entry.error, detail).to.match(/became Unreachable mid-command|rebooted while the command ran|did not reconnect|systemd is not reachable on the system bus/);
      expect(view(victim).state).to.equal('Failed');
    } else {
      expect(entry?.state, detail).to.equal('succeeded');
      process.stderr.write(`      (power cut before the command reached ${victim}: ${detail})\n`);
    }
    for (const n of names.filter((x) => x !== victim)) expect(view(n).state).to.equal('Commissioned');
    await waitFor(`${victim} Reachable`, () => view(victim).reachable && view(victim).bootId === fleet.bootId(victim), { timeoutMs: 60_000, intervalMs: 1000 });
    expect(fleet.nodes().filter((v) => v.state.endsWith('ing')).map((v) => `${v.id} ${v.state}`)).to.deep.equal([]);
    // The returning node may get a verify/repair job of its own (drift watcher, repair policy):
    // let it end, then, from Failed (every path stays open), commission it again.
    await waitFor(`no running job on ${victim}`, () => {
      const job = view(victim).currentJob;
      if (typeof job !== 'string' || job === '') return true;
      const j = (JSON.parse(mustCtl(['job', 'describe', job, '-o', 'json'])) as { job: { state: string } }).job;
      return ['Succeeded', 'Failed', 'Cancelled', 'RolledBack'].includes(j.state);
    }, { timeoutMs: 90_000, intervalMs: 1000 });
    if (view(victim).state !== 'Commissioned') mustCtl(['node', 'commission', id(victim), '-g', GROUP, '--wait'], 150_000);
    expect(view(victim).state).to.equal('Commissioned');
    expect(sh(victim, 'test -f /opt/fleet-app/.settled').code).to.equal(0);
    expect(fleet.exec(victim, ['systemctl', 'is-active', 'fleet-app']).stdout.trim()).to.equal('active');
  });

  it('the coordinator .deb runs as its sandboxed system service (DynamicUser, ProtectSystem=strict) and bootstraps its pki', async function () {
    this.timeout(120_000);
    const n = 'n3';
    fleet.mustExec(n, ['apt-get', 'install', '-y', '-q', `/fleet/${debName('cluster-coordinator', VERSION)}`], { timeoutMs: 120_000 });
    // Its own cluster on the fleet's etcd (another prefix), as a first replica would start: the
    // operator copies what `cluster-coordinator init` made (the CA etcd trusts, the cluster
    // secret, the coordinators' etcd certificate) into the service's pki dir first.
    const files = [PKI_FILES.clusterSecret, PKI_FILES.caCert, PKI_FILES.caKey, PKI_FILES.etcdCoordinatorCert, PKI_FILES.etcdCoordinatorKey];
    mkdirSync(join(fleet.shareDir, 'rehearsal-pki'), { recursive: true });
    for (const f of files) copyFileSync(join(fleet.pkiDir, f), join(fleet.shareDir, 'rehearsal-pki', f));
    fleet.mustExec(n, ['sh', '-c', `mkdir -p -m 0700 /var/lib/cluster-coordinator/pki && for f in ${files.join(' ')}; do install -m 0600 /fleet/rehearsal-pki/$f /var/lib/cluster-coordinator/pki/$f; done`]);
    fleet.mustExec(n, ['sh', '-c', `printf 'CLUSTER_ETCD=${fleet.etcdEndpoint}\\nCLUSTER_PREFIX=/rehearsal/\\nCLUSTER_ADVERTISE=${fleet.node(n).ip}:7400\\n' >> /etc/sysconfig/cluster-coordinator`]);
    fleet.mustExec(n, ['systemctl', 'start', 'cluster-coordinator']);
    const status = await waitFor('clusterctl status through the packaged coordinator', () => {
      const r = fleet.exec(n, ['clusterctl', '--credentials', '/var/lib/cluster-coordinator/pki/admin.yaml', '--coordinator', '127.0.0.1:7400', 'status'], { timeoutMs: 20_000 });
      return r.code === 0 ? r.stdout : undefined;
    }, { timeoutMs: 60_000, intervalMs: 1000 }).catch((err: Error) => {
      throw new Error(`${err.message}\n${fleet.exec(n, ['journalctl', '-u', 'cluster-coordinator', '-o', 'cat', '--no-pager', '-n', '20']).stdout}`);
    });
    expect(status).to.match(/Leader:\s+\S+ \(198\.18\.0\.3:7400\)/);
    expect(fleet.exec(n, ['systemctl', 'show', '-p', 'NRestarts', '--value', 'cluster-coordinator']).stdout.trim()).to.equal('0');
    expect(fleet.mustExec(n, ['sh', '-c', 'ls /var/lib/cluster-coordinator/pki'])).to.match(/admin\.yaml[^]*ca\.crt[^]*join-token/);
    fleet.mustExec(n, ['systemctl', 'stop', 'cluster-coordinator']);
  });
});
