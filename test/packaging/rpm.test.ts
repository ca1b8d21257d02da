/**
 * scripts/build-rpm, end to end: the RPMs are built once (before hook) from the current dist/,
 * inspected with rpm -qp, installed into a throw-away root with `rpm --root`, upgraded to a
 * second version whose default agent.yaml changed, and erased. The bundled programs from the
 * installed root then run for real: agent + coordinator (inside a systemd user manager with its
 * unit's seccomp/process sandbox) + clusterctl against a real etcd, the RPM equivalent of
 * `vagrant ssh node1 -c 'clusterctl nodes'`.
 *
 * The root gets a shell (dash and the libraries ldd names) so rpm really runs the scriptlets
 * in the chroot, and a stand-in /usr/lib/systemd/systemd-update-helper that records its
 * arguments: what the scriptlets do on install, upgrade and erase ($1 semantics) is observed,
 * not read. nodejs is not an RPM on this machine, hence --nodeps.
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import {
  appendFileSync, chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { PACKAGE_VERSION as VERSION, UPGRADE_VERSION, buildTwoReleases, copyShellInto, packageArch, rpmName } from './package-build';
import { EtcdServer, REPO_ROOT, freePort, run, spawnNode, testPki, waitFor, type ManagedProcess, type RunResult } from '../helpers';
import { readUnitFile, unitWithExecStart, values, verifyUnit } from './unit-file';
import { PROCESS_LEVEL_DIRECTIVES, runSandboxed, type SandboxedService } from './user-manager-sandbox';


async function buildRpm(cwd: string, args: string[]): Promise<RunResult> {
  return run(join(cwd, 'scripts', 'build-rpm'), ['--no-build', ...args], { cwd, timeoutMs: 300_000 });
}

function rpmQuery(args: string[]): string {
  return execFileSync('rpm', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** A root rpm can run scriptlets in: /bin/sh (dash) with its libraries, and a recording update helper. */
function prepareRoot(root: string): void {
  copyShellInto(root);
  const helper = join(root, 'usr', 'lib', 'systemd', 'systemd-update-helper');
  mkdirSync(dirname(helper), { recursive: true });
  mkdirSync(join(root, 'var', 'log'), { recursive: true });
  writeFileSync(helper, '#!/bin/sh\necho "$*" >> /var/log/update-helper.log\n');
  chmodSync(helper, 0o755);
  execFileSync('rpm', ['--root', root, '--dbpath', '/var/lib/rpm', '--initdb']);
}

async function rpmInRoot(root: string, args: string[]): Promise<RunResult> {
  const r = await run('rpm', ['--root', root, '--dbpath', '/var/lib/rpm', ...args], { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`rpm ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r;
}

describe('packaging: RPMs (scripts/build-rpm)', function () {
  this.timeout(120_000);
  let tmp: string;
  let out1: string;
  let out2: string;
  let variant: string;
  let root: string;
  const helperLog = (): string[] => {
    const f = join(root, 'var', 'log', 'update-helper.log');
    return existsSync(f) ? readFileSync(f, 'utf8').trim().split('\n') : [];
  };

  before(async function () {
    this.timeout(300_000);
    tmp = mkdtempSync(join(tmpdir(), 'rpm-test-'));
    root = join(tmp, 'root');
    // The next release changes the default agent.yaml: an upgrade must keep the operator's edited file.
    ({ out1, out2, variant } = await buildTwoReleases('build-rpm', tmp));
    mkdirSync(root);
    prepareRoot(root);
  });

  after(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('builds a noarch cluster-agent and a cluster-coordinator for this machine\'s architecture (its TCP liveness addon) at package.json\'s version', () => {
    for (const name of ['cluster-agent', 'cluster-coordinator']) {
      const file = join(out1, rpmName(name, VERSION));
      expect(existsSync(file), file).to.equal(true);
      expect(rpmQuery(['-qp', '--qf', '%{NAME} %{VERSION} %{RELEASE} %{ARCH}', file])).to.equal(`${name} ${VERSION} 1 ${packageArch('rpm', name)}`);
    }
    expect(packageArch('rpm', 'cluster-coordinator')).to.not.equal('noarch');
  });

  it('rpm -qpl lists the programs, proto, wrappers, units, config, state dir and docs', () => {
    const agent = rpmQuery(['-qpl', join(out1, rpmName('cluster-agent', VERSION))]).trim().split('\n');
    expect(agent).to.include.members([
      '/usr/lib/cluster/agent.js', '/usr/lib/cluster/facts-child.js', '/usr/lib/cluster/proto/cluster.proto', '/usr/lib/cluster/vendor/etcd3/proto/rpc.proto',
      '/usr/bin/cluster-agent', '/usr/lib/systemd/system/cluster-agent.service', '/etc/cluster/agent.yaml',
      '/etc/sysconfig/cluster-agent', '/var/lib/cluster-agent', '/usr/share/doc/cluster-agent/operations.md',
    ]);
    const coordinator = rpmQuery(['-qpl', join(out1, rpmName('cluster-coordinator', VERSION))]).trim().split('\n');
    expect(coordinator).to.include.members([
      '/usr/lib/cluster/coordinator.js', '/usr/lib/cluster/clusterctl.js', '/usr/lib/cluster/proto/cluster.proto',
      '/usr/lib/cluster/dashboard-web/cli/dashboard/web/main.js', '/usr/lib/cluster/tcp_liveness.node',
      '/usr/bin/cluster-coordinator', '/usr/bin/clusterctl', '/usr/lib/systemd/system/cluster-coordinator.service',
      '/etc/cluster/coordinator.yaml', '/etc/sysconfig/cluster-coordinator',
    ]);
    // Build leftovers stay out.
    expect([...agent, ...coordinator].filter((f) => f.endsWith('.meta.json') || f.includes('node_modules'))).to.deep.equal([]);
  });

  it('rpm -qp --scripts shows the systemd scriptlets (post / preun / postun with restart)', () => {
    for (const [name, unit] of [['cluster-agent', 'cluster-agent.service'], ['cluster-coordinator', 'cluster-coordinator.service']]) {
      const scripts = rpmQuery(['-qp', '--scripts', join(out1, rpmName(name, VERSION))]);
      expect(scripts).to.match(new RegExp(`postinstall scriptlet[^]*\\$1 -eq 1[^]*systemd-update-helper install-system-units ${unit}`));
      expect(scripts).to.match(new RegExp(`preuninstall scriptlet[^]*\\$1 -eq 0[^]*systemd-update-helper remove-system-units ${unit}`));
      expect(scripts).to.match(new RegExp(`postuninstall scriptlet[^]*\\$1 -ge 1[^]*systemd-update-helper mark-restart-system-units ${unit}`));
    }
  });

  it('rpm -qp --requires asks for nodejs >= 20 (and systemd for the scriptlets)', () => {
    for (const name of ['cluster-agent', 'cluster-coordinator']) {
      const requires = rpmQuery(['-qp', '--requires', join(out1, rpmName(name, VERSION))]).split('\n').map((l) => l.trim());
      expect(requires).to.include('nodejs >= 20');
      expect(requires).to.include('systemd');
    }
  });

  it('marks the config files %config(noreplace) and owns the state dir 0700', () => {
    const flags = rpmQuery(['-qp', '--qf', '[%{FILEFLAGS:fflags}|%{FILEMODES:perms}|%{FILENAMES}\n]', join(out1, rpmName('cluster-agent', VERSION))]);
    const byPath = new Map(flags.trim().split('\n').map((l) => { const [f, m, p] = l.split('|'); return [p, { f, m }]; }));
    expect(byPath.get('/etc/cluster/agent.yaml')).to.deep.equal({ f: 'cn', m: '-rw-------' });
    expect(byPath.get('/etc/sysconfig/cluster-agent')?.f).to.equal('cn');
    expect(byPath.get('/var/lib/cluster-agent')?.m).to.equal('drwx------');
    const cflags = rpmQuery(['-qp', '--qf', '[%{FILEFLAGS:fflags}|%{FILENAMES}\n]', join(out1, rpmName('cluster-coordinator', VERSION))]);
    expect(cflags).to.contain('cn|/etc/cluster/coordinator.yaml').and.to.contain('cn|/etc/sysconfig/cluster-coordinator');
  });

  it('installs both into a throw-away root; the scriptlets run as a first install', async () => {
    await rpmInRoot(root, ['--nodeps', '-i', join(out1, rpmName('cluster-agent', VERSION)), join(out1, rpmName('cluster-coordinator', VERSION))]);
    for (const f of ['usr/lib/cluster/agent.js', 'usr/lib/cluster/coordinator.js', 'usr/lib/cluster/clusterctl.js', 'usr/lib/cluster/proto/cluster.proto',
      'usr/lib/systemd/system/cluster-agent.service', 'usr/lib/systemd/system/cluster-coordinator.service', 'etc/cluster/coordinator.yaml']) {
      expect(existsSync(join(root, f)), f).to.equal(true);
    }
    expect(statSync(join(root, 'usr/bin/cluster-agent')).mode & 0o777).to.equal(0o755);
    expect(statSync(join(root, 'etc/cluster/agent.yaml')).mode & 0o777).to.equal(0o600);
    expect(statSync(join(root, 'var/lib/cluster-agent')).mode & 0o777).to.equal(0o700);
    expect(readFileSync(join(root, 'usr/bin/clusterctl'), 'utf8')).to.match(/^exec \/usr\/bin\/node \/usr\/lib\/cluster\/clusterctl\.js "\$@"$/m);
    expect(readFileSync(join(root, 'etc/cluster/agent.yaml'), 'utf8')).to.equal(readFileSync(join(REPO_ROOT, 'packaging/config/agent.yaml'), 'utf8'));
    expect(helperLog()).to.have.members(['install-system-units cluster-agent.service', 'install-system-units cluster-coordinator.service']);
  });

  it('the installed units pass systemd-analyze verify with their real wrapper as ExecStart', async () => {
    const dir = mkdtempSync(join(tmp, 'verify-'));
    for (const name of ['cluster-agent', 'cluster-coordinator']) {
      const r = await verifyUnit(unitWithExecStart(join(root, 'usr/lib/systemd/system', `${name}.service`), dir, join(root, 'usr/bin', name)));
      expect(r.output, r.output).to.equal('');
      expect(r.code).to.equal(0);
    }
  });

  it('the bundled programs start from the root (--help exits 0) and accept the shipped config files', async () => {
    const env = { CLUSTER_PROTO_DIR: '', HOME: tmp, XDG_CONFIG_HOME: join(tmp, 'xdg') };
    const lib = join(root, 'usr/lib/cluster');
    const cases: [string, string[], RegExp][] = [
      ['clusterctl.js', ['--help'], /Usage: clusterctl/],
      ['agent.js', ['--config', join(root, 'etc/cluster/agent.yaml'), '--help'], /Usage: cluster-agent/],
      ['coordinator.js', ['--config', join(root, 'etc/cluster/coordinator.yaml'), '--help'], /Usage: cluster-coordinator/],
    ];
    for (const [bundle, args, usage] of cases) {
      const r = await run(process.execPath, [join(lib, bundle), ...args], { cwd: '/', env, timeoutMs: 30_000 });
      expect(r.code, `${bundle}: ${r.stderr}`).to.equal(0);
      expect(r.stdout).to.match(usage);
    }
    // And a bad config key is refused with one line naming it (the shipped files are not lax).
    const bad = join(tmp, 'bad-agent.yaml');
    writeFileSync(bad, `${readFileSync(join(root, 'etc/cluster/agent.yaml'), 'utf8')}\njoinTokn: K10\n`);
    const r = await run(process.execPath, [join(lib, 'agent.js'), '--config', bad, '--help'], { cwd: '/', env, timeoutMs: 30_000 });
    expect(r.code).to.not.equal(0);
    expect(r.stderr).to.match(/unknown option "joinTokn"/);
  });

  it('the installed bundles run a cluster: clusterctl nodes shows the agent Discovered through the sandboxed coordinator', async function () {
    this.timeout(120_000);
    const lib = join(root, 'usr/lib/cluster');
    const etcd = await EtcdServer.start('rpm-e2e');
    let coordinator: SandboxedService | undefined;
    let agent: ManagedProcess | undefined;
    const pkiDir = join(tmp, 'pki');
    try {
      const port = await freePort();
      // As `cluster-coordinator init` leaves it: the CA the TLS etcd trusts and the coordinators' etcd certificate.
      await (await testPki()).writePkiDir(pkiDir);
      // The coordinator runs as a service of a real user manager under every process-level
      // directive of its installed unit (seccomp filter, address families, no capabilities...).
      const unit = readUnitFile(join(root, 'usr/lib/systemd/system/cluster-coordinator.service'));
      const props: string[] = [];
      for (const key of PROCESS_LEVEL_DIRECTIVES) for (const v of values(unit, 'Service', key)) props.push(`${key}=${v}`);
      props.push(`Environment=CLUSTER_ETCD=${etcd.endpoint}`, `Environment=CLUSTER_LISTEN=127.0.0.1:${port}`,
        `Environment=CLUSTER_COORDINATOR_CONFIG=${join(root, 'etc/cluster/coordinator.yaml')}`, 'Environment=CLUSTER_ELECTION_TTL=3',
        // The user manager cannot give it /etc/cluster/pki (ConfigurationDirectory=): a temp dir stands in.
        `Environment=CLUSTER_PKI_DIR=${pkiDir}`);
      coordinator = await runSandboxed('rpm-coordinator', props, [process.execPath, join(lib, 'coordinator.js')]);
      // The first start stores the CA and writes the first join token the agent uses.
      await waitFor('the coordinator to write its join token and admin.yaml', () => {
        if (coordinator?.ended()) throw new Error('the sandboxed coordinator ended');
        return existsSync(join(pkiDir, 'join-token')) && existsSync(join(pkiDir, 'admin.yaml'));
      }, { timeoutMs: 60_000, intervalMs: 200 });
      expect(statSync(join(pkiDir, 'join-token')).mode & 0o777).to.equal(0o600);

      agent = spawnNode('bundled-agent', join(lib, 'agent.js'), ['--config', join(root, 'etc/cluster/agent.yaml')], {
        cwd: '/',
        env: {
          CLUSTER_ETCD: etcd.endpoint, CLUSTER_NODE_ID: 'rpm-node-1', CLUSTER_STATE_DIR: join(tmp, 'agent-state'), CLUSTER_LEASE_TTL: '5', CLUSTER_PROTO_DIR: '',
          CLUSTER_JOIN_TOKEN_FILE: join(pkiDir, 'join-token'), CLUSTER_JOIN_ADDRESS: `127.0.0.1:${port}`,
        },
        logFile: join(tmp, 'agent.log'),
      });

      let last: RunResult | undefined;
      const listed = await waitFor('clusterctl nodes to list rpm-node-1 as Discovered', async () => {
        if (coordinator?.ended()) throw new Error('the sandboxed coordinator ended');
        last = await run(process.execPath, [join(lib, 'clusterctl.js'), '--coordinator', `127.0.0.1:${port}`, '--credentials', join(pkiDir, 'admin.yaml'), 'nodes'], {
          cwd: '/', env: { CLUSTER_PROTO_DIR: '', HOME: tmp, XDG_CONFIG_HOME: join(tmp, 'xdg') }, timeoutMs: 20_000,
        });
        return last.code === 0 && /rpm-node-1\s+Discovered/.test(last.stdout) ? last.stdout : undefined;
      }, { timeoutMs: 60_000, intervalMs: 500 }).catch((err: Error) => {
        const ended: Promise<string> = coordinator?.ended()
          ? coordinator.done.then((r) => `${r.stdout.slice(-1500)}${r.stderr.slice(-1500)}`)
          : Promise.resolve('still running');
        return ended.then((c) => { throw new Error(`${err.message}\nlast clusterctl: ${JSON.stringify(last)}\nagent: ${agent?.logs.slice(-2000)}\ncoordinator: ${c}`); });
      });
      expect(listed).to.match(/rpm-node-1\s+Discovered\s+yes/);
      // Its facts came from the packaged facts-child.js (agent/facts-provider.ts), not the empty stand-in.
      expect(agent.logs).to.not.match(/facts collection failed/);

      // A clean stop through systemd (SIGTERM) ends with success, not a seccomp kill.
      await agent.stop(15_000);
      const stopped = await coordinator.stop();
      const output = `${stopped.stdout}${stopped.stderr}`;
      expect(output, output.slice(-3000)).to.match(/"msg":"stopped"/);
      expect(stopped.stderr, output.slice(-3000)).to.match(/Finished with result: success/);
    } finally {
      await agent?.kill();
      await coordinator?.dispose();
      await etcd.destroy();
    }
  });

  it('an upgrade keeps edited config (new default as .rpmnew), untouched config follows, and the agent state survives', async () => {
    const agentYaml = join(root, 'etc/cluster/agent.yaml');
    const sysconfig = join(root, 'etc/sysconfig/cluster-agent');
    const coordinatorYaml = join(root, 'etc/cluster/coordinator.yaml');
    appendFileSync(agentYaml, '# edited by the operator\n');
    const editedAgentYaml = readFileSync(agentYaml, 'utf8');
    appendFileSync(coordinatorYaml, '# edited by the operator\n');
    const editedCoordinatorYaml = readFileSync(coordinatorYaml, 'utf8');
    const stateFile = join(root, 'var/lib/cluster-agent/applied-record.json');
    writeFileSync(stateFile, '{"units":["chrony-conf"]}');
    const sysconfigBefore = readFileSync(sysconfig, 'utf8');

    await rpmInRoot(root, ['--nodeps', '-U', join(out2, rpmName('cluster-agent', UPGRADE_VERSION)), join(out2, rpmName('cluster-coordinator', UPGRADE_VERSION))]);

    expect(rpmQuery(['--root', root, '--dbpath', '/var/lib/rpm', '-q', 'cluster-agent']).trim()).to.equal(`cluster-agent-${UPGRADE_VERSION}-1.noarch`);
    // Default changed and file edited: the edit stays, the new default lands as .rpmnew.
    expect(readFileSync(agentYaml, 'utf8')).to.equal(editedAgentYaml);
    expect(readFileSync(`${agentYaml}.rpmnew`, 'utf8')).to.contain('A default that changed in the next release.');
    // Default unchanged and file edited: the edit stays and there is nothing new to offer.
    expect(readFileSync(coordinatorYaml, 'utf8')).to.equal(editedCoordinatorYaml);
    expect(existsSync(`${coordinatorYaml}.rpmnew`)).to.equal(false);
    expect(readFileSync(sysconfig, 'utf8')).to.equal(sysconfigBefore);
    expect(readFileSync(stateFile, 'utf8')).to.equal('{"units":["chrony-conf"]}');
    expect(statSync(join(root, 'var/lib/cluster-agent')).mode & 0o777).to.equal(0o700);
    // Upgrade: the old packages' %postun ($1 = 1) marks the services for restart; nothing is
    // preset again and nothing is disabled.
    expect(helperLog().slice(2)).to.have.members(['mark-restart-system-units cluster-agent.service', 'mark-restart-system-units cluster-coordinator.service']);
  });

  it('an erase disables the unit and still leaves the agent state (and the edited config as .rpmsave)', async () => {
    await rpmInRoot(root, ['-e', 'cluster-agent']);
    expect(helperLog().slice(-1)).to.deep.equal(['remove-system-units cluster-agent.service']);
    expect(readFileSync(join(root, 'var/lib/cluster-agent/applied-record.json'), 'utf8')).to.equal('{"units":["chrony-conf"]}');
    expect(existsSync(join(root, 'etc/cluster/agent.yaml.rpmsave'))).to.equal(true);
    expect(existsSync(join(root, 'usr/lib/cluster/agent.js'))).to.equal(false);
    // Shared files stay for the coordinator package that still owns them.
    expect(existsSync(join(root, 'usr/lib/cluster/proto/cluster.proto'))).to.equal(true);
  });

  it('fails with a clear message when a program has not been built, and packages nothing', async () => {
    rmSync(join(variant, 'dist', 'coordinator', 'main.js'));
    const out3 = join(tmp, 'out3');
    const r = await buildRpm(variant, ['--out', out3, 'coordinator']);
    expect(r.code).to.equal(1);
    expect(r.stderr).to.match(/missing compiled program\(s\): dist\/coordinator\/main\.js/);
    expect(existsSync(out3)).to.equal(false);
  });

  it('refuses a version rpm cannot hold, and an unknown argument', async () => {
    const bad = await buildRpm(variant, ['--version', '1.0-beta', 'agent']);
    expect(bad.code).to.equal(1);
    expect(bad.stderr).to.match(/not a valid RPM version/);
    const unknown = await buildRpm(variant, ['--frobnicate']);
    expect(unknown.code).to.equal(2);
    expect(unknown.stderr).to.match(/unknown argument: --frobnicate/);
  });
});
