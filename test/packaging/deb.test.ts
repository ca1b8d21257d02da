/**
 * scripts/build-deb: the .debs are built once (before hook) from the current dist/, inspected with
 * dpkg-deb -I/-c, installed into a throw-away root with `dpkg --root`, upgraded to a second
 * version whose default agent.yaml changed (conffile handling), removed and purged.
 *
 * The root gets a shell (dash and the libraries ldd names) so dpkg really runs the maintainer
 * scripts chrooted into it, and a `systemctl` that records its arguments: what the scripts ask
 * of systemd on install, upgrade and removal is observed, not read. The root has no systemd
 * running (no /run/systemd/system), as in an image build; the booted-node suite (test/fleet)
 * runs the same package under a real systemd. nodejs is not a dpkg package in this root, hence
 * --force-depends.
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import {
  appendFileSync, chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PACKAGE_VERSION as VERSION, UPGRADE_VERSION, buildTwoReleases, copyShellInto, debName, packageArch } from './package-build';
import { REPO_ROOT, run, type RunResult } from '../helpers';


function buildDeb(cwd: string, args: string[]): Promise<RunResult> {
  return run(join(cwd, 'scripts', 'build-deb'), ['--no-build', ...args], { cwd, timeoutMs: 300_000 });
}

function dpkgDeb(args: string[]): string {
  return execFileSync('dpkg-deb', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 16 << 20 });
}

/** A root dpkg can run maintainer scripts in: /bin/sh with its libraries, a recording systemctl, an empty dpkg database. */
function prepareRoot(root: string): void {
  copyShellInto(root);
  // The scripts send systemctl's output to /dev/null: the chroot needs the real device.
  mkdirSync(join(root, 'dev'), { recursive: true });
  execFileSync('mknod', ['-m', '0666', join(root, 'dev', 'null'), 'c', '1', '3']);
  mkdirSync(join(root, 'usr', 'bin'), { recursive: true });
  mkdirSync(join(root, 'var', 'log'), { recursive: true });
  writeFileSync(join(root, 'usr', 'bin', 'systemctl'), '#!/bin/sh\necho "$*" >> /var/log/systemctl.log\n');
  chmodSync(join(root, 'usr', 'bin', 'systemctl'), 0o755);
  for (const d of ['info', 'updates', 'triggers']) mkdirSync(join(root, 'var/lib/dpkg', d), { recursive: true });
  writeFileSync(join(root, 'var/lib/dpkg/status'), '');
  writeFileSync(join(root, 'var/lib/dpkg/available'), '');
}

async function dpkgInRoot(root: string, args: string[]): Promise<RunResult> {
  const r = await run('dpkg', ['--root', root, '--force-depends', '--force-confdef', '--force-confold', ...args], {
    timeoutMs: 120_000, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  if (r.code !== 0) throw new Error(`dpkg ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r;
}

describe('packaging: Debian packages (scripts/build-deb)', function () {
  this.timeout(120_000);
  let tmp: string;
  let out1: string;
  let out2: string;
  let variant: string;
  let root: string;
  const systemctlLog = (): string[] => {
    const f = join(root, 'var', 'log', 'systemctl.log');
    return existsSync(f) ? readFileSync(f, 'utf8').trim().split('\n') : [];
  };

  before(async function () {
    this.timeout(300_000);
    tmp = mkdtempSync(join(tmpdir(), 'deb-test-'));
    root = join(tmp, 'root');
    // The next release changes the default agent.yaml: an upgrade must keep the operator's edited file.
    ({ out1, out2, variant } = await buildTwoReleases('build-deb', tmp));
    mkdirSync(root);
    prepareRoot(root);
  });

  after(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('dpkg-deb -I: name, version, Architecture (all; the coordinator\'s: this machine\'s, for its addon), Depends nodejs (>= 20), the conffiles and the three scripts', () => {
    for (const [name, pkg] of [['cluster-agent', 'agent'], ['cluster-coordinator', 'coordinator']]) {
      const file = join(out1, debName(name, VERSION));
      const fields = dpkgDeb(['-f', file, 'Package', 'Version', 'Architecture', 'Depends']);
      expect(fields).to.equal(`Package: ${name}\nVersion: ${VERSION}-1\nArchitecture: ${packageArch('deb', name)}\nDepends: nodejs (>= 20)\n`);
      expect(dpkgDeb(['-I', file, 'conffiles']).trim().split('\n')).to.deep.equal([`/etc/cluster/${pkg}.yaml`, `/etc/sysconfig/${name}`]);
      const info = dpkgDeb(['-I', file]);
      for (const script of ['postinst', 'prerm', 'postrm']) expect(info).to.match(new RegExp(`\\d+ lines\\s+\\*\\s+${script}\\s`));
    }
  });

  it('dpkg-deb -c: programs, proto, wrappers, units, config (0600 for the agent), state dir 0700, docs; all owned by root', () => {
    const listing = dpkgDeb(['-c', join(out1, debName('cluster-agent', VERSION))]).trim().split('\n');
    const byPath = new Map(listing.map((l) => { const f = l.split(/\s+/); return [f[5].replace(/^\./, ''), { mode: f[0], owner: f[1] }]; }));
    for (const p of ['/usr/lib/cluster/agent/agent.js', '/usr/lib/cluster/agent/facts-child.js', '/usr/lib/cluster/agent/proto/cluster.proto', '/usr/lib/cluster/agent/vendor/etcd3/proto/rpc.proto',
      '/usr/bin/cluster-agent', '/usr/lib/systemd/system/cluster-agent.service', '/etc/sysconfig/cluster-agent',
      '/usr/share/doc/cluster-agent/operations.md']) {
      expect(byPath.has(p), p).to.equal(true);
    }
    expect(byPath.get('/etc/cluster/agent.yaml')).to.deep.equal({ mode: '-rw-------', owner: 'root/root' });
    expect(byPath.get('/var/lib/cluster-agent/')?.mode).to.equal('drwx------');
    expect([...byPath.values()].every((v) => v.owner === 'root/root')).to.equal(true);
    expect([...byPath.keys()].some((p) => p.endsWith('.meta.json'))).to.equal(false);
    const coordinator = dpkgDeb(['-c', join(out1, debName('cluster-coordinator', VERSION))]);
    for (const p of ['./usr/lib/cluster/coordinator/coordinator.js', './usr/lib/cluster/coordinator/clusterctl.js', './usr/bin/clusterctl',
      './usr/lib/cluster/coordinator/dashboard-web/cli/dashboard/web/main.js', './usr/lib/cluster/coordinator/tcp_liveness.node',
      './usr/bin/cluster-coordinator', './usr/lib/systemd/system/cluster-coordinator.service']) {
      expect(coordinator).to.contain(p);
    }
    expect(coordinator).to.match(/-rw-r--r-- root\/root\s+\d+ \S+ \S+ \.\/etc\/cluster\/coordinator\.yaml/);
  });

  it('ships the same unit files and config files as the repository (the RPMs\' inputs)', () => {
    const x = join(tmp, 'extract');
    dpkgDeb(['-x', join(out1, debName('cluster-agent', VERSION)), x]);
    dpkgDeb(['-x', join(out1, debName('cluster-coordinator', VERSION)), x]);
    for (const [inDeb, inRepo] of [
      ['usr/lib/systemd/system/cluster-agent.service', 'systemd/cluster-agent.service'],
      ['usr/lib/systemd/system/cluster-coordinator.service', 'systemd/cluster-coordinator.service'],
      ['etc/cluster/agent.yaml', 'packaging/config/agent.yaml'], ['etc/cluster/coordinator.yaml', 'packaging/config/coordinator.yaml'],
      ['etc/sysconfig/cluster-agent', 'packaging/sysconfig/cluster-agent']]) {
      expect(readFileSync(join(x, inDeb), 'utf8'), inDeb).to.equal(readFileSync(join(REPO_ROOT, inRepo), 'utf8'));
    }
    expect(readFileSync(join(x, 'usr/bin/cluster-agent'), 'utf8')).to.match(/^exec \/usr\/bin\/node \$CLUSTER_AGENT_NODE_FLAGS \/usr\/lib\/cluster\/agent\/agent\.js "\$@"$/m);
    expect(readFileSync(join(x, 'usr/bin/clusterctl'), 'utf8')).to.match(/^exec \/usr\/bin\/node \/usr\/lib\/cluster\/coordinator\/clusterctl\.js "\$@"$/m);
  });

  it('installs both into a throw-away root with dpkg --root; postinst presets each unit as a first install', async () => {
    await dpkgInRoot(root, ['-i', join(out1, debName('cluster-agent', VERSION)), join(out1, debName('cluster-coordinator', VERSION))]);
    expect(statSync(join(root, 'usr/bin/cluster-agent')).mode & 0o777).to.equal(0o755);
    expect(statSync(join(root, 'etc/cluster/agent.yaml')).mode & 0o777).to.equal(0o600);
    expect(statSync(join(root, 'var/lib/cluster-agent')).mode & 0o777).to.equal(0o700);
    const status = readFileSync(join(root, 'var/lib/dpkg/status'), 'utf8');
    expect(status).to.match(/Package: cluster-agent\nStatus: install ok installed/);
    expect(status).to.match(/Package: cluster-coordinator\nStatus: install ok installed/);
    // No systemd running in the root: no daemon-reload, no start; the presets decide enabling.
    expect(systemctlLog()).to.have.members(['--no-reload preset cluster-agent.service', '--no-reload preset cluster-coordinator.service']);
    // The bundled program runs from the installed tree.
    const r = await run(process.execPath, [join(root, 'usr/lib/cluster/agent/agent.js'), '--config', join(root, 'etc/cluster/agent.yaml'), '--help'],
      { cwd: '/', env: { CLUSTER_PROTO_DIR: '', HOME: tmp }, timeoutMs: 30_000 });
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.match(/Usage: cluster-agent/);
  });

  it('an upgrade keeps an edited conffile (new default as .dpkg-dist), an untouched one follows, the agent state survives, no preset again', async () => {
    const agentYaml = join(root, 'etc/cluster/agent.yaml');
    appendFileSync(agentYaml, '# edited by the operator\n');
    const edited = readFileSync(agentYaml, 'utf8');
    const stateFile = join(root, 'var/lib/cluster-agent/applied-record.json');
    writeFileSync(stateFile, '{"units":["chrony-conf"]}');
    const sysconfigBefore = readFileSync(join(root, 'etc/sysconfig/cluster-agent'), 'utf8');
    const before = systemctlLog().length;

    await dpkgInRoot(root, ['-i', join(out2, debName('cluster-agent', UPGRADE_VERSION))]);

    expect(readFileSync(join(root, 'var/lib/dpkg/status'), 'utf8')).to.contain(`Package: cluster-agent\nStatus: install ok installed`)
      .and.to.contain(`Version: ${UPGRADE_VERSION}-1`);
    expect(readFileSync(agentYaml, 'utf8')).to.equal(edited);
    expect(readFileSync(`${agentYaml}.dpkg-dist`, 'utf8')).to.contain('A default that changed in the next release.');
    expect(readFileSync(join(root, 'etc/sysconfig/cluster-agent'), 'utf8')).to.equal(sysconfigBefore);
    expect(readFileSync(stateFile, 'utf8')).to.equal('{"units":["chrony-conf"]}');
    expect(statSync(join(root, 'var/lib/cluster-agent')).mode & 0o777).to.equal(0o700);
    // The program reports the version it was packaged as (what the coordinator shows after an upgrade).
    const v = await run(process.execPath, [join(root, 'usr/lib/cluster/agent/agent.js'), '--version'], { cwd: '/', env: { CLUSTER_PROTO_DIR: '', HOME: tmp }, timeoutMs: 30_000 });
    expect(v.stdout.trim()).to.equal(`cluster-agent ${UPGRADE_VERSION}`);
    // An upgrade is not a first install: no preset (which could re-enable a disabled agent),
    // and no restart here either, since no systemd runs in this root (test/fleet covers it).
    expect(systemctlLog().slice(before)).to.deep.equal([]);
  });

  it('remove disables the unit and keeps conffiles and state; purge removes the conffiles and still keeps the state', async () => {
    const before = systemctlLog().length;
    await dpkgInRoot(root, ['-r', 'cluster-agent']);
    expect(systemctlLog().slice(before)).to.deep.equal(['--no-reload disable cluster-agent.service']);
    expect(existsSync(join(root, 'usr/lib/cluster/agent/agent.js'))).to.equal(false);
    expect(existsSync(join(root, 'etc/cluster/agent.yaml'))).to.equal(true);
    expect(existsSync(join(root, 'usr/lib/cluster/coordinator/coordinator.js'))).to.equal(true);
    await dpkgInRoot(root, ['--purge', 'cluster-agent']);
    expect(existsSync(join(root, 'etc/cluster/agent.yaml'))).to.equal(false);
    expect(readFileSync(join(root, 'var/lib/cluster-agent/applied-record.json'), 'utf8')).to.equal('{"units":["chrony-conf"]}');
  });

  it('refuses a version Debian cannot hold and an unknown argument; fails clearly when a program is not built', async () => {
    const bad = await buildDeb(variant, ['--version', '1.0-beta', 'agent']);
    expect(bad.code).to.equal(1);
    expect(bad.stderr).to.match(/not a valid Debian upstream version/);
    const unknown = await buildDeb(variant, ['--frobnicate']);
    expect(unknown.code).to.equal(2);
    expect(unknown.stderr).to.match(/unknown argument: --frobnicate/);
    rmSync(join(variant, 'dist', 'coordinator', 'main.js'));
    const out3 = join(tmp, 'out3');
    const r = await buildDeb(variant, ['--out', out3, 'coordinator']);
    expect(r.code).to.equal(1);
    expect(r.stderr).to.match(/missing compiled program\(s\): dist\/coordinator\/main\.js/);
  });
});
