/**
 * A local cluster on one machine, for trying the product and for demos: an etcd (unless
 * --etcd names one), one coordinator and N agents with sandbox identities, all child
 * processes with their logs in .cluster/logs/. Waits until every node is discovered, prints
 * `clusterctl nodes`, runs the main job (commission with examples/demo-bundle.yaml, unless
 * --no-job), prints the nodes again, then either stops everything (--once) or follows `clusterctl nodes
 * --watch` until Ctrl-C and then stops everything: agents first (so they leave cleanly),
 * then the coordinator, then etcd.
 *
 * Secure like a real cluster: the coordinator creates the cluster CA on first start and writes
 * ca.crt, admin.yaml and join-token to .cluster/pki (--pki-dir); the agents join with that token
 * (their certificates stay in their state dirs), and every clusterctl call here uses admin.yaml.
 *
 * Run it through scripts/dev-cluster, which first installs what is missing and builds.
 */
import { initPkiDir, PKI_FILES, readEtcdTls } from '../coordinator/pki/pki-dir';
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { sleep } from '../shared/backoff';
import { parseOptions, formatHelp } from '../shared/options';
import { ClusterError, InvalidArgumentError, errorMessage } from '../shared/errors';
import { CoordinatorClient } from '../cli/coordinator-client';
import { compileClientOptions } from '../cli/global-options';
import type { Node__Output } from '../generated/cluster/v1/Node';
import {
  BIN, etcdHealthy, findEtcd, freePort, isRunning, portFree, REPO_ROOT as REPO, spawnEtcd, stopChild, tailFile, tcpReachable,
} from './lib/process-support';

const OPTIONS = {
  nodes: { kind: 'int', default: 3, min: 1, placeholder: 'N', description: 'number of agents (node-1 .. node-N)' },
  port: { kind: 'int', default: 7400, min: 1, placeholder: 'PORT', description: 'coordinator port on 127.0.0.1 (clusterctl\'s default is 7400)' },
  once: { kind: 'boolean', description: 'print the nodes, then stop everything and exit 0' },
  job: { kind: 'boolean', default: true, description: 'run the main job: push examples/demo-bundle.yaml, set group demo, commission the nodes (--no-job skips it)' },
  fresh: { kind: 'boolean', description: 'delete .cluster/ (etcd data, node state, logs) before starting' },
  waitTimeout: { kind: 'duration', default: '120s', min: 1000, placeholder: 'DURATION', description: 'how long to wait for the nodes to be discovered' },
} as const;

const USAGE = 'Usage: scripts/dev-cluster [--once] [--no-job] [--nodes N] [--port PORT] [--fresh]';
const EXTRA = 'Starts etcd (data in .cluster/etcd), a coordinator on 127.0.0.1:PORT and N agents; logs in .cluster/logs/.\n' +
  'Without --once it follows `clusterctl nodes --watch` until Ctrl-C, then stops everything.';

/** Time each child gets to stop after SIGTERM before SIGKILL (the agent's own grace is 10 s). */
const STOP_GRACE_MS = 20_000;

function say(text: string): void {
  process.stderr.write(`[dev-cluster] ${text}\n`);
}

class DevClusterError extends ClusterError {}

interface Child {
  name: string;
  role: 'etcd' | 'coordinator' | 'agent';
  proc: ChildProcess;
  logFile: string;
  exited: Promise<number | null>;
  stopping: boolean;
}

/** What the previous run left in .cluster/run.json, to find orphans after a hard kill. */
interface RunRecord {
  supervisorPid: number;
  children: { name: string; pid: number }[];
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A process's command line, to be sure a recorded pid is still ours before signalling it. */
function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return '';
  }
}

/** A child's log tail, indented under the message that quotes it. */
function tail(file: string, lines = 15): string {
  const text = tailFile(file, lines);
  return text ? text.split('\n').map((l) => `    ${l}`).join('\n') : '    (no log)';
}

class DevCluster {
  /** Data, logs and run.json (DEV_CLUSTER_DIR moves it, for tests). */
  readonly dir = process.env.DEV_CLUSTER_DIR || join(REPO, '.cluster');
  readonly logDir = join(this.dir, 'logs');
  /** The coordinator's --pki-dir: ca.crt, admin.yaml, join-token, cluster-secret. */
  readonly pkiDir = join(this.dir, 'pki');
  readonly adminCredentials = join(this.pkiDir, 'admin.yaml');
  readonly joinTokenFile = join(this.pkiDir, 'join-token');
  private readonly children: Child[] = [];
  private etcdEndpoint = '';
  private shuttingDown = false;

  constructor(private readonly o: { nodes: number; port: number; once: boolean; fresh: boolean; waitTimeout: number }) {}

  get coordinatorAddress(): string {
    return `127.0.0.1:${this.o.port}`;
  }

  private rel(p: string): string {
    return relative(process.cwd(), p) || '.';
  }

  private previousRun(): RunRecord | undefined {
    const file = join(this.dir, 'run.json');
    if (!existsSync(file)) return undefined;
    try {
      return JSON.parse(readFileSync(file, 'utf8')) as RunRecord;
    } catch {
      return undefined;
    }
  }

  /** Refuses a second live dev cluster (the wrapper calls it before it installs or builds anything). */
  refuseIfRunning(): void {
    const rec = this.previousRun();
    if (rec && rec.supervisorPid !== process.pid && alive(rec.supervisorPid) && cmdline(rec.supervisorPid).includes('dev-cluster')) {
      throw new DevClusterError(`a dev cluster is already running (pid ${rec.supervisorPid}); stop it with Ctrl-C in its terminal or: kill ${rec.supervisorPid}`);
    }
  }

  /** Refuses a second live dev cluster, and stops children a hard-killed run left behind. */
  private handlePreviousRun(): void {
    this.refuseIfRunning();
    const rec = this.previousRun();
    if (!rec) return;
    for (const c of rec.children) {
      // Only a process whose command line still points into this repository is ours.
      if (alive(c.pid) && cmdline(c.pid).includes(REPO)) {
        say(`stopping ${c.name} (pid ${c.pid}) left running by a previous dev cluster that was killed`);
        process.kill(c.pid, 'SIGKILL');
      }
    }
  }

  private recordRun(): void {
    const rec: RunRecord = { supervisorPid: process.pid, children: this.children.map((c) => ({ name: c.name, pid: c.proc.pid ?? -1 })) };
    writeFileSync(join(this.dir, 'run.json'), JSON.stringify(rec, null, 2) + '\n');
  }

  /** .cluster/logs/<name>.log, with a header line saying what starts now. */
  private openLog(name: string, command: string, args: readonly string[]): string {
    const logFile = join(this.logDir, `${name}.log`);
    writeFileSync(logFile, `\n===== ${new Date().toISOString()} ${command} ${args.join(' ')}\n`, { flag: 'a' });
    return logFile;
  }

  private spawnChild(name: string, role: Child['role'], command: string, args: string[]): Child {
    const logFile = this.openLog(name, command, args);
    const fd = openSync(logFile, 'a');
    // Blank CLUSTER_* variables of the operator's shell (CLUSTER_COORDINATOR would pin the
    // agents to a fixed address): the dev cluster is configured by flags only.
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!/^(CLUSTER_|CLUSTERCTL_)/.test(k)) env[k] = v;
    // detached: a new process group, so Ctrl-C in the terminal reaches only this script,
    // which then stops the children in order (agents, coordinator, etcd).
    const proc = spawn(command, args, { cwd: REPO, env, stdio: ['ignore', fd, fd], detached: true });
    closeSync(fd);
    return this.track(name, role, proc, logFile);
  }

  /** Records a child (run.json) and reports it if it exits before we stop it. */
  private track(name: string, role: Child['role'], proc: ChildProcess, logFile: string): Child {
    const child: Child = {
      name, role, proc, logFile, stopping: false,
      exited: new Promise((res) => proc.once('exit', (code, signal) => res(code ?? (signal ? 128 : null)))),
    };
    proc.once('error', (err) => say(`${name} could not start: ${err.message}`));
    this.children.push(child);
    this.recordRun();
    void child.exited.then((code) => {
      if (child.stopping || this.shuttingDown) return;
      say(`${name} exited unexpectedly (code ${code}); last lines of ${this.rel(logFile)}:\n${tail(logFile)}`);
      if (role !== 'agent') void this.shutdown(1);
    });
    return child;
  }

  private async startEtcd(): Promise<void> {
    const bin = findEtcd();
    if (!bin) throw new DevClusterError('etcd is not installed: run scripts/ensure-deps (or apt-get install etcd-server)');
    const [clientPort, peerPort] = [await freePort(), await freePort()];
    const dataDir = join(this.dir, 'etcd');
    // Fresh ports every run are fine for a one-member cluster: etcd keeps its data and only
    // logs that the peer URL changed. Detached like the other children (spawnChild).
    // etcd runs with TLS and client-certificate auth, trusting the cluster CA: the CA and etcd's
    // certificates are made first (as `cluster-coordinator init` does); the coordinator then
    // stores this CA and enables etcd's authentication.
    const wrote = await initPkiDir({ dir: this.pkiDir });
    if (wrote.length > 0) say(`made the cluster CA and etcd's certificates in ${this.rel(this.pkiDir)}`);
    const logFile = this.openLog('etcd', bin, ['--name', 'dev', '--data-dir', dataDir, '--client-cert-auth']);
    const tls = { caFile: join(this.pkiDir, PKI_FILES.caCert), certFile: join(this.pkiDir, PKI_FILES.etcdServerCert), keyFile: join(this.pkiDir, PKI_FILES.etcdServerKey) };
    const { proc, url, endpoint } = spawnEtcd({ bin, name: 'dev', dataDir, clientPort, peerPort, logFile, detached: true, tls });
    const rootTls = await readEtcdTls({ caFile: tls.caFile, certFile: join(this.pkiDir, PKI_FILES.etcdRootCert), keyFile: join(this.pkiDir, PKI_FILES.etcdRootKey) });
    this.track('etcd', 'etcd', proc, logFile);
    this.etcdEndpoint = endpoint;
    const deadline = Date.now() + 30_000;
    while (!(await etcdHealthy(url, 2000, rootTls))) {
      if (this.shuttingDown) throw new DevClusterError('etcd did not start');
      if (Date.now() > deadline) throw new DevClusterError(`etcd did not become healthy within 30s; see ${this.rel(join(this.logDir, 'etcd.log'))}`);
      await sleep(200);
    }
    say(`etcd up at ${this.etcdEndpoint} (data in ${this.rel(dataDir)})`);
  }

  private startCoordinator(): void {
    this.spawnChild('coordinator', 'coordinator', process.execPath, [
      BIN.coordinator, '--etcd', this.etcdEndpoint, '--listen', this.coordinatorAddress, '--replica-id', 'dev-coordinator',
      '--pki-dir', this.pkiDir,
    ]);
    say(`coordinator starting on ${this.coordinatorAddress}`);
  }

  /**
   * Waits for the coordinator to be listening with its pki files in place (written on the first
   * start; kept from an earlier run otherwise), so the agents find their join token.
   */
  private async waitForPki(): Promise<void> {
    const deadline = Date.now() + this.o.waitTimeout;
    while (!(existsSync(this.joinTokenFile) && existsSync(this.adminCredentials) && (await tcpReachable(this.coordinatorAddress, 1000)))) {
      if (this.shuttingDown) throw new DevClusterError('stopped while waiting for the coordinator');
      if (Date.now() > deadline) {
        throw new DevClusterError(
          `no ${this.rel(this.joinTokenFile)} or ${this.rel(this.adminCredentials)} after ${this.o.waitTimeout / 1000}s: the coordinator writes them when it creates the cluster CA; ` +
          `if this etcd already holds a CA from elsewhere, start with --fresh (see ${this.rel(join(this.logDir, 'coordinator.log'))})`,
        );
      }
      await sleep(200);
    }
    say(`cluster CA ready: ${this.rel(this.pkiDir)}/{ca.crt,admin.yaml,join-token}`);
  }

  private startAgents(): void {
    for (let i = 1; i <= this.o.nodes; i++) {
      const id = `node-${i}`;
      const base = join(this.dir, id);
      mkdirSync(join(base, 'root'), { recursive: true });
      this.spawnChild(id, 'agent', process.execPath, [
        BIN.agent, '--etcd', this.etcdEndpoint, '--node-id', id, '--hostname', id,
        '--state-dir', join(base, 'state'), '--root', join(base, 'root'),
        // Used at the first start only; later runs find the certificate in the state dir.
        '--join-token-file', this.joinTokenFile, '--join-address', this.coordinatorAddress,
        // Several agents on one host: each takes a free port (its log line "metrics listening" names it).
        '--metrics-listen', '127.0.0.1:0',
      ]);
    }
    say(`${this.o.nodes} agent(s) starting: ${Array.from({ length: this.o.nodes }, (_, i) => `node-${i + 1}`).join(', ')}`);
  }

  /** Polls the coordinator until every node is reachable and past New (discovered). */
  private async waitForNodes(): Promise<void> {
    const want = Array.from({ length: this.o.nodes }, (_, i) => `node-${i + 1}`);
    const deadline = Date.now() + this.o.waitTimeout;
    let last = '';
    for (;;) {
      if (this.shuttingDown) throw new DevClusterError('stopped while waiting for the nodes');
      let nodes: Node__Output[] = [];
      const client = new CoordinatorClient(compileClientOptions({ coordinator: [this.coordinatorAddress], timeout: 3000, credentials: this.adminCredentials }));
      try {
        nodes = await client.listNodes();
      } catch (err) {
        last = errorMessage(err);
      } finally {
        client.close();
      }
      const ready = want.filter((id) => nodes.some((n) => n.id === id && n.reachable && n.state !== '' && n.state !== 'New'));
      if (ready.length === want.length) {
        say(`all ${want.length} nodes discovered`);
        return;
      }
      if (nodes.length) last = `${ready.length}/${want.length} discovered`;
      if (Date.now() > deadline) {
        throw new DevClusterError(`the nodes were not all discovered within ${this.o.waitTimeout / 1000}s (${last}); see the logs in ${this.rel(this.logDir)}/`);
      }
      await sleep(500);
    }
  }

  /** Runs clusterctl with our coordinator, its output on our stdout. */
  private clusterctl(args: string[]): ChildProcess {
    return spawn(process.execPath, [BIN.clusterctl, '--coordinator', this.coordinatorAddress, '--credentials', this.adminCredentials, ...args], { cwd: REPO, stdio: ['ignore', 'inherit', 'inherit'] });
  }

  async start(): Promise<void> {
    for (const [name, path] of Object.entries(BIN)) {
      if (!existsSync(path)) throw new DevClusterError(`${this.rel(path)} (${name}) is missing: run scripts/dev-cluster (it builds first) or npm run build`);
    }
    if (this.o.fresh && existsSync(this.dir)) {
      this.handlePreviousRun();
      rmSync(this.dir, { recursive: true, force: true });
      say(`deleted ${this.rel(this.dir)}/ (--fresh)`);
    }
    mkdirSync(this.logDir, { recursive: true });
    this.handlePreviousRun();
    if (!(await portFree(this.o.port))) {
      throw new DevClusterError(`port ${this.o.port} on 127.0.0.1 is busy (another coordinator or dev cluster?); choose another with --port N`);
    }
    say(`logs: ${this.rel(this.logDir)}/{etcd,coordinator,node-1..${this.o.nodes}}.log`);
    await this.startEtcd();
    this.startCoordinator();
    await this.waitForPki();
    this.startAgents();
    await this.waitForNodes();
  }

  async printNodes(): Promise<void> {
    await this.ctl(['nodes']);
  }

  /** Runs clusterctl with its output on ours; resolves with its exit code. */
  private async ctl(args: string[]): Promise<number> {
    const p = this.clusterctl(args);
    return new Promise((res) => p.once('exit', (code) => res(code ?? 1)));
  }

  /**
   * The main job: the demo bundle onto every node through the real path an operator uses
   * (bundle push, group set, a rolling commission job with batch 1, followed live). Nodes
   * already in service from an earlier run (.cluster/ keeps etcd's data) are verified instead.
   */
  async runMainJob(): Promise<void> {
    const bundle = join(REPO, 'examples', 'demo-bundle.yaml');
    say(`main job: clusterctl bundle push -f ${this.rel(bundle)}; group set demo --bundle demo@1`);
    if (await this.ctl(['bundle', 'push', '-f', bundle]) !== 0) throw new DevClusterError('pushing the demo bundle failed (see above)');
    if (await this.ctl(['group', 'set', 'demo', '--bundle', 'demo@1']) !== 0) throw new DevClusterError('setting group demo failed (see above)');
    const client = new CoordinatorClient(compileClientOptions({ coordinator: [this.coordinatorAddress], timeout: 5000, credentials: this.adminCredentials }));
    let nodes: Node__Output[];
    try {
      nodes = await client.listNodes();
    } finally {
      client.close();
    }
    const ready = nodes.filter((n) => ['Discovered', 'Decommissioned', 'Failed', 'Cancelled'].includes(n.state)).map((n) => n.id).sort();
    const args = ready.length > 0
      ? ['node', 'commission', ...ready, '-g', 'demo', '--batch', '1', '--wait']
      : ['node', 'verify', '-g', 'demo', '--wait'];
    say(`main job: clusterctl ${args.join(' ')}`);
    let code = await this.ctl(args);
    if (ready.length === 0 && code === 2) {
      say('main job: drift found (someone changed a managed file); repairing: clusterctl node repair -g demo --wait');
      code = await this.ctl(['node', 'repair', '-g', 'demo', '--wait']);
    }
    if (code !== 0) throw new DevClusterError(`the main job ended with exit code ${code}; see clusterctl jobs / job logs and ${this.rel(this.logDir)}/`);
  }

  /** Follows `clusterctl nodes --watch` until Ctrl-C/SIGTERM (or the watch ends). */
  async follow(stop: Promise<void>): Promise<void> {
    process.stderr.write('\n');
    say(`following changes (clusterctl nodes --watch); Ctrl-C stops the cluster`);
    const watch = this.clusterctl(['nodes', '--watch']);
    const ended = new Promise<void>((res) => watch.once('exit', () => res()));
    await Promise.race([stop, ended]);
    if (isRunning(watch)) watch.kill('SIGTERM');
    await ended;
  }

  /** Stops agents, then the coordinator, then etcd: each SIGTERM, SIGKILL after the grace. */
  async stopAll(): Promise<void> {
    this.shuttingDown = true;
    for (const role of ['agent', 'coordinator', 'etcd'] as const) {
      const group = this.children.filter((c) => c.role === role && isRunning(c.proc));
      if (!group.length) continue;
      say(`stopping ${group.map((c) => c.name).join(', ')}`);
      await Promise.all(group.map(async (c) => {
        c.stopping = true;
        await stopChild(c.proc, STOP_GRACE_MS, () => say(`${c.name} did not stop within ${STOP_GRACE_MS / 1000}s; killing it`));
      }));
    }
    rmSync(join(this.dir, 'run.json'), { force: true });
    if (this.children.length) say('stopped');
  }

  private exitCode: number | undefined;
  private shutdownPromise: Promise<void> | undefined;

  /** Stops everything once, whoever asks first (a signal, a crashed child, the end of --once). */
  shutdown(code: number): Promise<void> {
    this.exitCode ??= code;
    this.shutdownPromise ??= this.stopAll().then(() => process.exit(this.exitCode ?? code));
    return this.shutdownPromise;
  }

  /** Last resort on an unexpected exit: no child may outlive the script. */
  killAllNow(): void {
    for (const c of this.children) if (isRunning(c.proc)) c.proc.kill('SIGKILL');
  }
}

async function main(): Promise<void> {
  let parsed;
  try {
    parsed = parseOptions(OPTIONS, { argv: process.argv.slice(2), env: {}, allowPositionals: false });
  } catch (err) {
    process.stderr.write(`dev-cluster: ${errorMessage(err)}\n`);
    process.exit(2);
  }
  if (parsed.help) {
    process.stdout.write(formatHelp(USAGE, OPTIONS, EXTRA).replace(/\n.*--config FILE.*\n/, '\n'));
    return;
  }
  const v = parsed.values;
  if (v.port > 65535) throw new InvalidArgumentError(`--port ${v.port}: use 1-65535`);
  const cluster = new DevCluster({ nodes: v.nodes, port: v.port, once: v.once, fresh: v.fresh, waitTimeout: v.waitTimeout });
  // The wrapper's check before it installs or builds: flags are valid and no cluster runs.
  if (process.env.DEV_CLUSTER_PREFLIGHT === '1') {
    try {
      cluster.refuseIfRunning();
    } catch (err) {
      process.stderr.write(`dev-cluster: ${errorMessage(err)}\n`);
      process.exit(1);
    }
    return;
  }

  let onStop: () => void = () => undefined;
  const stop = new Promise<void>((res) => { onStop = res; });
  const onSignal = (signal: NodeJS.Signals): void => {
    process.stderr.write('\n');
    say(`${signal}: stopping the cluster (Ctrl-C again to kill everything at once)`);
    onStop();
    process.removeAllListeners(signal);
    process.once(signal, () => {
      cluster.killAllNow();
      process.exit(130);
    });
    void cluster.shutdown(0);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.once('exit', () => cluster.killAllNow());

  try {
    await cluster.start();
  } catch (err) {
    process.stderr.write(`dev-cluster: ${errorMessage(err)}\n`);
    await cluster.shutdown(1);
    return;
  }
  process.stderr.write('\n');
  await cluster.printNodes();
  process.stderr.write('\n');
  if (v.job) {
    try {
      await cluster.runMainJob();
    } catch (err) {
      process.stderr.write(`dev-cluster: ${errorMessage(err)}\n`);
      await cluster.shutdown(1);
      return;
    }
    process.stderr.write('\n');
    await cluster.printNodes();
    process.stderr.write('\n');
  }
  say(`cluster up: coordinator ${cluster.coordinatorAddress}; logs in ${relative(process.cwd(), cluster.logDir) || '.'}/`);
  const creds = relative(process.cwd(), cluster.adminCredentials);
  say(`clusterctl needs the admin credentials the coordinator wrote: ${creds} (CA, certificate, key and the coordinator's address)`);
  say(`try: export CLUSTERCTL_CREDENTIALS=${creds}; node dist/cli/main.js nodes -o wide   (or: node dist/cli/main.js --credentials ${creds} node describe node-1)`);
  if (v.once) {
    await cluster.shutdown(0);
    return;
  }
  await cluster.follow(stop);
  await cluster.shutdown(0);
}

main().catch((err: unknown) => {
  process.stderr.write(`dev-cluster: ${errorMessage(err)}\n`);
  process.exit(1);
});
