/**
 * A fleet of booted Linux nodes on one box (TESTBED.md, "Booted machines"): a cached Debian root
 * (debootstrap), N nodes booted from it with `systemd-nspawn -b` on overlay copies (systemd as
 * PID 1, the system bus, dpkg/apt), each in its own network namespace on a bridge in
 * 198.18.0.0/24 that lives in a hub namespace of its own.
 *
 * etcd and the coordinator run in the hub namespace, on the host side of the bridge
 * (198.18.0.254), from the repository's dist/: they are the control plane the fleet is managed
 * from, so they must outlive every power cut, reboot and partition of a node (partitioning a
 * node cuts its veth, never the control plane), they run the code under test without a
 * package rebuild, and a node's memory holds only what a real machine would run (the agent).
 *
 * Node.js inside the nodes: the host's /usr/bin/node is bind-mounted read-only. Debian 12's
 * `nodejs` is 18.19 and the bundles need 20 (they refuse older); a tiny package built here,
 * fleet-host-nodejs, `Provides: nodejs (= <host version>)` so that `apt-get install
 * ./cluster-agent_*.deb` resolves its `Depends: nodejs (>= 20)` exactly as on a real machine.
 *
 * Everything a `down` needs is in the fleet dir's state.json (pids with their start marks,
 * namespaces, mounts), written before each resource is made, so a `down` after a crash of
 * `up` (or of the test) finds and removes it all. Processes are killed only by recorded pid,
 * and only when /proc/PID/cmdline still names this fleet dir.
 */
import { initPkiDir, PKI_FILES } from '../../coordinator/pki/pki-dir';
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync, copyFileSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import { BIN, DIST, REPO_ROOT, findEtcd } from './process-support';

export const FLEET_SUBNET = '198.18.0';
export const HUB_IP = `${FLEET_SUBNET}.254`;
export const ETCD_PORT = 2379;
export const COORDINATOR_PORT = 7400;
/** Bumped when the preparation of the cached base root changes (a new cache is built). */
const BASE_RECIPE = 'bookworm-minbase-systemd-dbus-iproute2-v1';
const DEBIAN_MIRROR = 'http://deb.debian.org/debian';
const NODE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface FleetOptions {
  /** Fleet dir: state.json, node overlays, logs, pki. */
  dir: string;
  /** Base root cache dir (survives `down`). */
  cacheDir: string;
  /** Short name: prefix of namespaces and links (≤ 6 characters: link names hold 15). */
  name: string;
  log?: (line: string) => void;
}

export interface NodeRecord {
  name: string;
  ip: string;
  netns: string;
  /** The hub-side veth end (down = partitioned). */
  hubLink: string;
  machineId: string;
  root: string;
  /** The supervisor that boots nspawn again after a reboot. */
  supervisorPid?: number;
}

export interface FleetState {
  name: string;
  hubNetns: string;
  etcdPid?: number;
  coordinatorPid?: number;
  nodes: Record<string, NodeRecord>;
  mounts: string[];
  netns: string[];
}

export interface ExecResult { code: number; stdout: string; stderr: string }

export class FleetError extends Error {}

function sh(cmd: string, args: readonly string[], opts: { input?: string; timeoutMs?: number } = {}): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { encoding: 'utf8', input: opts.input, timeout: opts.timeoutMs ?? 60_000, maxBuffer: 64 << 20 });
}

function must(cmd: string, args: readonly string[], opts: { input?: string; timeoutMs?: number } = {}): string {
  const r = sh(cmd, args, opts);
  if (r.status !== 0) {
    throw new FleetError(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal ?? r.error?.message}): ${(r.stderr || r.stdout || '').trim().slice(-2000)}`);
  }
  return r.stdout;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** The command line of a live process ('' when gone). */
function cmdlineOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return '';
  }
}

/** Children of a process (from /proc/PID/task/TID/children). */
export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const text = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
      if (text) out.push(...text.split(/\s+/).map(Number));
    }
  } catch {
    // gone
  }
  return out;
}

function alive(pid: number | undefined): pid is number {
  return pid !== undefined && pid > 0 && existsSync(`/proc/${pid}`);
}

export class Fleet {
  readonly dir: string;
  readonly cacheDir: string;
  readonly name: string;
  private readonly log: (line: string) => void;

  constructor(o: FleetOptions) {
    this.dir = resolve(o.dir);
    this.cacheDir = resolve(o.cacheDir);
    if (!/^[a-z][a-z0-9]{0,5}$/.test(o.name)) throw new FleetError(`fleet name ${JSON.stringify(o.name)}: 1-6 lower-case letters/digits, a letter first (it prefixes link names)`);
    this.name = o.name;
    this.log = o.log ?? ((l) => process.stderr.write(`[fleet] ${l}\n`));
  }

  get statePath(): string { return join(this.dir, 'state.json'); }
  get baseRoot(): string { return join(this.cacheDir, BASE_RECIPE); }
  get shareDir(): string { return join(this.dir, 'share'); }
  get pkiDir(): string { return join(this.dir, 'pki'); }
  get logDir(): string { return join(this.dir, 'logs'); }
  get credentials(): string { return join(this.pkiDir, 'admin.yaml'); }
  get coordinatorAddress(): string { return `${HUB_IP}:${COORDINATOR_PORT}`; }
  get etcdEndpoint(): string { return `${HUB_IP}:${ETCD_PORT}`; }

  readState(): FleetState | undefined {
    if (!existsSync(this.statePath)) return undefined;
    return JSON.parse(readFileSync(this.statePath, 'utf8')) as FleetState;
  }

  private state(): FleetState {
    const s = this.readState();
    if (!s) throw new FleetError(`no fleet in ${this.dir} (run: fleet up)`);
    return s;
  }

  private writeState(s: FleetState): void {
    mkdirSync(this.dir, { recursive: true });
    writeFileSync(`${this.statePath}.tmp`, `${JSON.stringify(s, null, 2)}\n`);
    renameSync(`${this.statePath}.tmp`, this.statePath);
  }

  private update(f: (s: FleetState) => void): FleetState {
    const s = this.state();
    f(s);
    this.writeState(s);
    return s;
  }

  node(name: string): NodeRecord {
    const n = this.state().nodes[name];
    if (!n) throw new FleetError(`no node ${JSON.stringify(name)} in this fleet (have: ${Object.keys(this.state().nodes).join(', ') || 'none'})`);
    return n;
  }

  nodeNames(): string[] {
    return Object.keys(this.readState()?.nodes ?? {}).sort((a, b) => Number(a.slice(1)) - Number(b.slice(1)));
  }

  // ---------------------------------------------------------------- base root

  /** Builds the base root once (debootstrap + preparation) and returns its path; reuses the cache. */
  ensureBase(): { path: string; built: boolean; seconds: number } {
    const ready = join(this.baseRoot, '.fleet-base-ready');
    if (existsSync(ready)) return { path: this.baseRoot, built: false, seconds: 0 };
    const started = Date.now();
    mkdirSync(this.cacheDir, { recursive: true });
    const tmp = `${this.baseRoot}.tmp`;
    rmSync(tmp, { recursive: true, force: true });
    this.log(`debootstrap bookworm into ${tmp} (once; cached in ${this.cacheDir})`);
    must('debootstrap', ['--variant=minbase', '--include=systemd,systemd-sysv,dbus,iproute2', 'bookworm', tmp, DEBIAN_MIRROR], { timeoutMs: 900_000 });
    // Each node gets its own machine-id (written into its upper dir) and its machine name as
    // hostname; the base must carry neither the build's id nor the host's name.
    rmSync(join(tmp, 'etc/hostname'), { force: true });
    writeFileSync(join(tmp, 'etc/machine-id'), '');
    // Nodes reach nothing but the bridge: no Debian mirror in their apt sources.
    writeFileSync(join(tmp, 'etc/apt/sources.list'), '# fleet node: no network but the bridge; local repositories go to sources.list.d\n');
    rmSync(join(tmp, 'var/lib/apt/lists'), { recursive: true, force: true });
    mkdirSync(join(tmp, 'var/lib/apt/lists/partial'), { recursive: true });
    this.installHostNodeProvider(tmp);
    writeFileSync(join(tmp, '.fleet-base-ready'), `${BASE_RECIPE}\n${new Date().toISOString()}\n`);
    rmSync(this.baseRoot, { recursive: true, force: true });
    renameSync(tmp, this.baseRoot);
    const seconds = Math.round((Date.now() - started) / 1000);
    this.log(`base root ready in ${seconds} s: ${this.baseRoot}`);
    return { path: this.baseRoot, built: true, seconds };
  }

  /** fleet-host-nodejs: Provides nodejs at the host's version; /usr/bin/node is bind-mounted at boot. */
  private installHostNodeProvider(root: string): void {
    const version = process.versions.node;
    const pkg = join(root, 'tmp', 'fleet-host-nodejs');
    mkdirSync(join(pkg, 'DEBIAN'), { recursive: true });
    writeFileSync(join(pkg, 'DEBIAN', 'control'), [
      'Package: fleet-host-nodejs', `Version: ${version}`, 'Architecture: all', 'Maintainer: fleet <fleet@localhost>',
      `Provides: nodejs (= ${version})`, 'Description: the host\'s Node.js, bind-mounted at /usr/bin/node by scripts/fleet', '',
    ].join('\n'));
    must('dpkg-deb', ['--root-owner-group', '--build', pkg, join(root, 'tmp', 'fleet-host-nodejs.deb')]);
    must('chroot', [root, 'dpkg', '-i', '/tmp/fleet-host-nodejs.deb']);
    rmSync(pkg, { recursive: true, force: true });
    rmSync(join(root, 'tmp', 'fleet-host-nodejs.deb'), { force: true });
  }

  // ---------------------------------------------------------------- up

  /**
   * Every node's systemd, journald, logind and dbus hold inotify instances, and the kernel's limit
   * (fs.inotify.max_user_instances, default 128) counts them per uid: every node's root is the
   * host's uid 0. Past ~12 nodes, systemd in the next node fails with "Too many open files" on
   * inotify and never reaches running (seen with 20 nodes). Raises the limit (never lowers it).
   */
  ensureInotifyLimit(nodes: number): void {
    const path = '/proc/sys/fs/inotify/max_user_instances';
    const need = 256 + 32 * nodes;
    const have = Number(readFileSync(path, 'utf8').trim());
    if (have >= need) return;
    writeFileSync(path, `${need}\n`);
    this.log(`raised fs.inotify.max_user_instances from ${have} to ${need} (inotify instances of ${nodes} booted nodes, all uid 0)`);
  }

  /** Hub namespace with the bridge, etcd and the coordinator; returns once the coordinator answers. */
  async startControlPlane(): Promise<void> {
    if (this.readState()) throw new FleetError(`a fleet is recorded in ${this.dir}: run fleet down first`);
    for (const d of [this.dir, this.shareDir, this.pkiDir, this.logDir, join(this.dir, 'nodes')]) mkdirSync(d, { recursive: true });
    const hub = `${this.name}-hub`;
    this.writeState({ name: this.name, hubNetns: hub, nodes: {}, mounts: [], netns: [hub] });
    must('ip', ['netns', 'add', hub]);
    must('ip', ['-n', hub, 'link', 'set', 'lo', 'up']);
    must('ip', ['-n', hub, 'link', 'add', 'br0', 'type', 'bridge']);
    must('ip', ['-n', hub, 'addr', 'add', `${HUB_IP}/24`, 'dev', 'br0']);
    must('ip', ['-n', hub, 'link', 'set', 'br0', 'up']);

    const etcd = findEtcd();
    if (!etcd) throw new FleetError('etcd not found (apt-get install etcd-server)');
    // etcd with TLS and client-certificate auth, trusting the cluster CA made first (as
    // `cluster-coordinator init` does); the coordinator stores that CA and enables etcd auth.
    await initPkiDir({ dir: this.pkiDir, etcdHosts: [HUB_IP] });
    const etcdUrl = `https://${HUB_IP}:${ETCD_PORT}`;
    const etcdPid = this.spawnInHub('etcd', [etcd, '--name', 'fleet', '--data-dir', join(this.dir, 'etcd'),
      '--listen-client-urls', etcdUrl, '--advertise-client-urls', etcdUrl,
      '--client-cert-auth', '--trusted-ca-file', join(this.pkiDir, PKI_FILES.caCert),
      '--cert-file', join(this.pkiDir, PKI_FILES.etcdServerCert), '--key-file', join(this.pkiDir, PKI_FILES.etcdServerKey),
      '--listen-peer-urls', 'http://127.0.0.1:2380', '--initial-advertise-peer-urls', 'http://127.0.0.1:2380',
      '--initial-cluster', 'fleet=http://127.0.0.1:2380', '--log-level', 'warn']);
    this.update((s) => { s.etcdPid = etcdPid; });
    await this.waitUntil('etcd healthy', 30_000, () => this.hubFetchHealthy());

    const coordinatorPid = this.spawnInHub('coordinator', [process.execPath, BIN.coordinator,
      '--etcd', this.etcdEndpoint, '--listen', `0.0.0.0:${COORDINATOR_PORT}`, '--advertise', this.coordinatorAddress,
      '--replica-id', `${this.name}-coordinator`, '--pki-dir', this.pkiDir, '--election-ttl', '5', '--ping-interval', '2']);
    this.update((s) => { s.coordinatorPid = coordinatorPid; });
    await this.waitUntil('the coordinator to write admin.yaml and join-token', 60_000,
      () => existsSync(this.credentials) && existsSync(join(this.pkiDir, 'join-token')));
    copyFileSync(join(this.pkiDir, 'join-token'), join(this.shareDir, 'join-token'));
  }

  /** Whether etcd in the hub answers /health (checked from inside the hub namespace, as etcd's root user). */
  private hubFetchHealthy(): boolean {
    const f = (name: string): string => JSON.stringify(join(this.pkiDir, name));
    const r = this.inHub([process.execPath, '-e',
      `const fs=require('fs');require('https').get('https://${HUB_IP}:${ETCD_PORT}/health',{servername:'etcd',ca:fs.readFileSync(${f(PKI_FILES.caCert)}),` +
      `cert:fs.readFileSync(${f(PKI_FILES.etcdRootCert)}),key:fs.readFileSync(${f(PKI_FILES.etcdRootKey)})},(res)=>{let b='';res.on('data',(d)=>{b+=d;});` +
      `res.on('end',()=>{try{process.exit(JSON.parse(b).health==='true'?0:1);}catch{process.exit(1);}});}).on('error',()=>process.exit(1));`], 5000);
    return r.code === 0;
  }

  /** Runs a command in the hub namespace (etcd, coordinator and clusterctl live there). */
  inHub(argv: readonly string[], timeoutMs = 60_000): ExecResult {
    const r = sh('nsenter', [`--net=/run/netns/${this.state().hubNetns}`, '--', ...argv], { timeoutMs });
    return { code: r.status ?? 1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  }

  /** clusterctl against the fleet's coordinator with the admin credentials. */
  clusterctl(args: readonly string[], timeoutMs = 30_000): ExecResult {
    return this.inHub([process.execPath, BIN.clusterctl, '--coordinator', this.coordinatorAddress, '--credentials', this.credentials, ...args], timeoutMs);
  }

  private spawnInHub(logName: string, argv: readonly string[]): number {
    const out = openSync(join(this.logDir, `${logName}.log`), 'a');
    // The fleet dir on the command line marks the process as ours for `down` (see kill()).
    const child = spawn('nsenter', [`--net=/run/netns/${this.state().hubNetns}`, '--', 'env', `FLEET_DIR=${this.dir}`, ...argv], {
      stdio: ['ignore', out, out], detached: true, cwd: this.dir,
    });
    closeSync(out);
    child.unref();
    if (!child.pid) throw new FleetError(`could not start ${logName}`);
    return child.pid;
  }

  /** Creates node n<i>: namespace, veth on the bridge, overlay root, machine-id; then boots it. */
  async addNode(index: number): Promise<NodeRecord> {
    const s = this.state();
    const name = `n${index}`;
    if (s.nodes[name]) throw new FleetError(`node ${name} exists`);
    const rec: NodeRecord = {
      name, ip: `${FLEET_SUBNET}.${index}`, netns: `${this.name}-${name}`, hubLink: `${this.name}-${name}`,
      machineId: randomBytes(16).toString('hex'), root: join(this.dir, 'nodes', name, 'root'),
    };
    if (index < 1 || index > 250) throw new FleetError('node index must be 1..250');
    this.update((st) => { st.nodes[name] = rec; st.netns.push(rec.netns); });
    must('ip', ['netns', 'add', rec.netns]);
    must('ip', ['link', 'add', rec.hubLink, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', rec.netns]);
    must('ip', ['link', 'set', rec.hubLink, 'netns', s.hubNetns]);
    must('ip', ['-n', s.hubNetns, 'link', 'set', rec.hubLink, 'master', 'br0']);
    must('ip', ['-n', s.hubNetns, 'link', 'set', rec.hubLink, 'up']);
    must('ip', ['-n', rec.netns, 'addr', 'add', `${rec.ip}/24`, 'dev', 'eth0']);
    must('ip', ['-n', rec.netns, 'link', 'set', 'eth0', 'up']);
    must('ip', ['-n', rec.netns, 'link', 'set', 'lo', 'up']);

    const nodeDir = join(this.dir, 'nodes', name);
    for (const d of ['upper/etc', 'work', 'root']) mkdirSync(join(nodeDir, d), { recursive: true });
    writeFileSync(join(nodeDir, 'upper/etc/machine-id'), `${rec.machineId}\n`);
    this.update((st) => { st.mounts.push(rec.root); });
    must('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${this.baseRoot},upperdir=${join(nodeDir, 'upper')},workdir=${join(nodeDir, 'work')}`, rec.root]);
    this.poweron(name);
    return rec;
  }

  /** Starts the node's supervisor, which boots it (again after a reboot) until it powers off. */
  poweron(name: string): void {
    const rec = this.node(name);
    if (alive(rec.supervisorPid) && cmdlineOf(rec.supervisorPid).includes(this.dir)) throw new FleetError(`${name} is already powered on`);
    rmSync(this.nspawnPidFile(name), { force: true });
    const out = openSync(join(this.logDir, `${name}.console.log`), 'a');
    const child = spawn(process.execPath, [join(DIST, 'scripts', 'fleet.js'), '_supervise', '--dir', this.dir, '--name', this.name, name], {
      stdio: ['ignore', out, out], detached: true,
    });
    closeSync(out);
    child.unref();
    this.update((s) => { s.nodes[name].supervisorPid = child.pid; });
  }

  private nspawnPidFile(name: string): string { return join(this.dir, 'nodes', name, 'nspawn.pid'); }

  /** The supervisor loop (`fleet _supervise NODE`): nspawn exits 133 on reboot, boot again. */
  async supervise(name: string): Promise<number> {
    const rec = this.node(name);
    for (;;) {
      const args = ['-D', rec.root, '-b', '--register=no', '--keep-unit', '-M', name,
        `--network-namespace-path=/run/netns/${rec.netns}`, '--bind-ro=/usr/bin/node:/usr/bin/node',
        `--bind-ro=${this.shareDir}:/fleet`, '--console=read-only', '--resolv-conf=off', '--timezone=off', '--link-journal=no'];
      const child = spawn('systemd-nspawn', args, { stdio: ['ignore', 'inherit', 'inherit'] });
      writeFileSync(this.nspawnPidFile(name), `${child.pid}\n`);
      const stopping = (): void => { child.kill('SIGTERM'); };
      process.on('SIGTERM', stopping);
      const code: number | null = await new Promise((res) => child.once('exit', (c) => res(c)));
      process.off('SIGTERM', stopping);
      rmSync(this.nspawnPidFile(name), { force: true });
      process.stdout.write(`[fleet] ${name}: systemd-nspawn exited with ${code}\n`);
      if (code !== 133) return code ?? 1;
      process.stdout.write(`[fleet] ${name}: reboot, booting again\n`);
    }
  }

  /** systemd-nspawn's pid, and the node's PID 1 (its child) when booted. */
  pids(name: string): { nspawn?: number; init?: number } {
    let nspawn: number | undefined;
    try {
      nspawn = Number(readFileSync(this.nspawnPidFile(name), 'utf8').trim());
    } catch {
      return {};
    }
    if (!alive(nspawn)) return {};
    const init = childrenOf(nspawn)[0];
    return { nspawn, ...(init ? { init } : {}) };
  }

  /** Runs a command inside a node (all its namespaces) — `fleet ssh NODE -- CMD`. */
  exec(name: string, argv: readonly string[], opts: { input?: string; timeoutMs?: number } = {}): ExecResult {
    const { init } = this.pids(name);
    if (!init) return { code: 255, stdout: '', stderr: `${name} is not running` };
    const r = sh('nsenter', ['-t', String(init), '-a', '--', '/usr/bin/env', '-i', `PATH=${NODE_PATH}`, 'LANG=C.UTF-8', 'HOME=/root', ...argv], opts);
    return { code: r.status ?? 255, stdout: r.stdout ?? '', stderr: r.stderr ?? (r.error?.message ?? '') };
  }

  /** `exec` without blocking the event loop (installs on many nodes side by side). */
  execAsync(name: string, argv: readonly string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<ExecResult> {
    const { init } = this.pids(name);
    if (!init) return Promise.resolve({ code: 255, stdout: '', stderr: `${name} is not running` });
    return new Promise((res) => {
      // No input: stdin is /dev/null. With input, a command that exits before reading it makes
      // the write fail with EPIPE; its exit code and stderr say what happened, so that error is
      // not thrown (CI saw `install` exit first and the uncaught EPIPE fail the whole fleet).
      const child = spawn('nsenter', ['-t', String(init), '-a', '--', '/usr/bin/env', '-i', `PATH=${NODE_PATH}`, 'LANG=C.UTF-8', 'HOME=/root', ...argv],
        { stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], timeout: opts.timeoutMs ?? 60_000 });
      let stdout = '';
      let stderr = '';
      child.stdout?.on('data', (d: Buffer) => { stdout += d.toString(); });
      child.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
      if (child.stdin) {
        child.stdin.on('error', () => { /* EPIPE: see above */ });
        child.stdin.end(opts.input);
      }
      child.once('error', (err) => res({ code: 255, stdout, stderr: `${stderr}${err.message}` }));
      child.once('close', (code) => res({ code: code ?? 255, stdout, stderr }));
    });
  }

  async mustExecAsync(name: string, argv: readonly string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<string> {
    const r = await this.execAsync(name, argv, opts);
    if (r.code !== 0) throw new FleetError(`${name}: ${argv.join(' ')} failed (${r.code}): ${(r.stderr || r.stdout).trim().slice(-2000)}`);
    return r.stdout;
  }

  mustExec(name: string, argv: readonly string[], opts: { input?: string; timeoutMs?: number } = {}): string {
    const r = this.exec(name, argv, opts);
    if (r.code !== 0) throw new FleetError(`${name}: ${argv.join(' ')} failed (${r.code}): ${(r.stderr || r.stdout).trim().slice(-2000)}`);
    return r.stdout;
  }

  /** Waits until the node's systemd says running (or degraded: a unit failed, the node is up). */
  async waitBooted(name: string, timeoutMs = 120_000): Promise<void> {
    await this.waitUntil(`${name} to boot (systemctl is-system-running)`, timeoutMs, () => {
      const r = this.exec(name, ['systemctl', 'is-system-running'], { timeoutMs: 10_000 });
      return /^(running|degraded)/.test(r.stdout.trim());
    }, 500);
  }

  bootId(name: string): string {
    return this.mustExec(name, ['cat', '/proc/sys/kernel/random/boot_id']).trim();
  }

  /** Installs the agent from the .deb in the share dir, configures it for the fleet, enables and starts it. */
  async installAgent(name: string, deb: string, opts: { leaseTtl?: number } = {}): Promise<void> {
    await this.mustExecAsync(name, ['apt-get', 'install', '-y', '-q', '--no-install-recommends', `/fleet/${deb}`], { timeoutMs: 180_000 });
    const yaml = [
      '# written by scripts/fleet: the operator\'s edit of the shipped file',
      'etcd:', `  - ${this.etcdEndpoint}`,
      `leaseTtl: ${opts.leaseTtl ?? 10}`,
      'prefix: /cluster/v1/',
      'stateDir: /var/lib/cluster-agent',
      'joinTokenFile: /etc/cluster/join-token',
      `joinAddress: ${this.coordinatorAddress}`,
      'logLevel: info', '',
    ].join('\n');
    await this.mustExecAsync(name, ['sh', '-c', 'umask 077 && cat > /etc/cluster/agent.yaml'], { input: yaml });
    await this.mustExecAsync(name, ['install', '-m', '0600', '/fleet/join-token', '/etc/cluster/join-token']);
    await this.mustExecAsync(name, ['systemctl', 'enable', '--now', 'cluster-agent.service'], { timeoutMs: 60_000 });
  }

  // ---------------------------------------------------------------- lifecycle of one node

  /** `systemctl reboot` inside the node; the supervisor boots it again (new boot id). */
  reboot(name: string): void {
    this.exec(name, ['systemctl', 'reboot'], { timeoutMs: 10_000 });
  }

  /** Power cut: SIGKILL the supervisor, systemd-nspawn and the node's PID 1 (its whole pid namespace). */
  poweroff(name: string): void {
    const rec = this.node(name);
    const { nspawn, init } = this.pids(name);
    this.kill(rec.supervisorPid, 'SIGKILL', this.dir);
    if (nspawn) this.kill(nspawn, 'SIGKILL', rec.root);
    if (init) {
      try { process.kill(init, 'SIGKILL'); } catch { /* gone */ }
    }
    rmSync(this.nspawnPidFile(name), { force: true });
    this.update((s) => { delete s.nodes[name].supervisorPid; });
  }

  /** Clean shutdown: SIGTERM to systemd-nspawn (the node's systemd powers off). */
  async shutdown(name: string, timeoutMs = 60_000): Promise<void> {
    const rec = this.node(name);
    const sup = rec.supervisorPid;
    if (alive(sup) && cmdlineOf(sup).includes(this.dir)) process.kill(sup, 'SIGTERM');
    await this.waitUntil(`${name} to power off`, timeoutMs, () => !this.pids(name).nspawn && !(alive(sup) && cmdlineOf(sup).includes(this.dir)), 250)
      .catch(() => this.poweroff(name));
    this.update((s) => { delete s.nodes[name].supervisorPid; });
  }

  /** Cuts the node's link on the bridge: its packets go nowhere (connections hang, as in a real partition). */
  partition(name: string): void {
    must('ip', ['-n', this.state().hubNetns, 'link', 'set', this.node(name).hubLink, 'down']);
  }

  heal(name: string): void {
    must('ip', ['-n', this.state().hubNetns, 'link', 'set', this.node(name).hubLink, 'up']);
  }

  // ---------------------------------------------------------------- down

  /** Powers everything off and removes namespaces, mounts and links; works from any half-made state. */
  async down(): Promise<string[]> {
    const s = this.readState();
    const problems: string[] = [];
    if (!s) return problems;
    await Promise.all(Object.keys(s.nodes).map((n) => this.shutdown(n, 20_000).catch((e: Error) => { problems.push(e.message); })));
    for (const n of Object.keys(s.nodes)) {
      if (this.pids(n).nspawn) this.poweroff(n);
    }
    this.kill(s.coordinatorPid, 'SIGTERM', this.dir);
    await this.waitUntil('the coordinator to stop', 20_000, () => !alive(s.coordinatorPid) || !cmdlineOf(s.coordinatorPid).includes(this.dir))
      .catch(() => this.kill(s.coordinatorPid, 'SIGKILL', this.dir));
    this.kill(s.etcdPid, 'SIGTERM', this.dir);
    await this.waitUntil('etcd to stop', 10_000, () => !alive(s.etcdPid) || !cmdlineOf(s.etcdPid).includes(this.dir))
      .catch(() => this.kill(s.etcdPid, 'SIGKILL', this.dir));
    for (const m of [...s.mounts].reverse()) {
      if (!this.isMounted(m)) continue;
      let r = sh('umount', [m]);
      if (r.status !== 0) {
        await sleep(1000);
        r = sh('umount', ['-l', m]);
      }
      if (r.status !== 0) problems.push(`umount ${m}: ${r.stderr.trim()}`);
    }
    for (const ns of [...s.netns].reverse()) {
      if (!existsSync(`/run/netns/${ns}`)) continue;
      const r = sh('ip', ['netns', 'del', ns]);
      if (r.status !== 0) problems.push(`ip netns del ${ns}: ${r.stderr.trim()}`);
    }
    if (problems.length === 0) {
      rmSync(join(this.dir, 'nodes'), { recursive: true, force: true });
      rmSync(join(this.dir, 'etcd'), { recursive: true, force: true });
      rmSync(this.pkiDir, { recursive: true, force: true });
      rmSync(this.shareDir, { recursive: true, force: true });
      rmSync(this.statePath, { force: true });
    }
    return problems;
  }

  private isMounted(path: string): boolean {
    return readFileSync('/proc/self/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === path);
  }

  /** Signals a recorded pid only while its command line still contains `mark` (no pid reuse accident). */
  private kill(pid: number | undefined, signal: NodeJS.Signals, mark: string): void {
    if (!alive(pid)) return;
    const cmd = cmdlineOf(pid);
    const environ = ((): string => { try { return readFileSync(`/proc/${pid}/environ`, 'utf8'); } catch { return ''; } })();
    if (!cmd.includes(mark) && !environ.includes(`FLEET_DIR=${this.dir}`)) return;
    try { process.kill(pid, signal); } catch { /* gone */ }
  }

  async waitUntil(what: string, timeoutMs: number, probe: () => boolean | Promise<boolean>, intervalMs = 300): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (await probe()) return;
      if (Date.now() > deadline) throw new FleetError(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await sleep(intervalMs);
    }
  }

  // ---------------------------------------------------------------- clusterctl views

  /** `clusterctl nodes -o json`, parsed. */
  nodes(): CtlNodeView[] {
    const r = this.clusterctl(['nodes', '-o', 'json']);
    if (r.code !== 0) throw new FleetError(`clusterctl nodes failed (${r.code}): ${r.stderr.trim()}`);
    return JSON.parse(r.stdout) as CtlNodeView[];
  }

  /** The node id the agent uses (its machine-id). */
  nodeId(name: string): string { return this.node(name).machineId; }

  copyToShare(file: string, as?: string): string {
    const base = as ?? file.split('/').pop() ?? 'file';
    copyFileSync(file, join(this.shareDir, base));
    return base;
  }
}

/** The fields of `clusterctl nodes -o json` the fleet reads. */
export interface CtlNodeView {
  id: string;
  hostname?: string;
  state: string;
  reachable: boolean;
  agentVersion?: string;
  bootId?: string;
  [key: string]: unknown;
}

export const FLEET_REPO_ROOT = REPO_ROOT;
