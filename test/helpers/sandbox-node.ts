/**
 * A simulated bare-metal node for end-to-end tests: a real systemd user manager in its own
 * mount namespace (systemd-sandbox.ts) and a real cluster-agent PROCESS entered into that
 * namespace with `nsenter --mount`, talking to that manager over its session bus, with its own
 * --root (where file/directory units land and commands find $NODE_ROOT) and --state-dir (its
 * applied record). Commands the agent runs therefore see the node's /run/systemd and can call
 * `systemctl --user` like a machine's own tools would.
 *
 * nsenter without --pid/--fork execs the agent in place, so the process we hold IS the agent:
 * SIGKILL/SIGSTOP reach it directly (a power cut, a pause), not a wrapper.
 *
 * The root and state dir live under the TestCluster's dir (they outlive agent restarts, like a
 * disk outlives a reboot); the agent log goes to the cluster's log dir so a failing test's
 * `logTails()` shows it. `restart({ bootId })` simulates a reboot: SIGKILL, then a new boot id.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { TestCluster } from './cluster';
import { BIN, ManagedProcess, type RunResult } from './processes';
import { startSystemdSandbox, type SystemdSandbox } from './systemd-sandbox';

export interface SandboxNodeOptions {
  /** Membership lease TTL, seconds (default: the cluster's). */
  leaseTtlSec?: number;
  /** Boot id the agent reports (default `<nodeId>-boot-1`). */
  bootId?: string;
  extraArgs?: readonly string[];
  env?: NodeJS.ProcessEnv;
  /** Wait for the agent's "registered" log line (default true). */
  waitRegistered?: boolean;
}

const READY_TIMEOUT_MS = 30_000;

export class SandboxNode {
  proc: ManagedProcess;
  bootId: string;
  /** Node root: unit paths resolve under it ($NODE_ROOT for commands). */
  readonly root: string;
  readonly stateDir: string;
  private starts = 0;
  private stopped = false;

  private constructor(
    private readonly cluster: TestCluster,
    readonly nodeId: string,
    readonly sandbox: SystemdSandbox,
    private readonly options: SandboxNodeOptions,
  ) {
    const dir = join(cluster.baseDir, 'nodes', nodeId);
    this.root = join(dir, 'root');
    this.stateDir = join(dir, 'state');
    mkdirSync(this.root, { recursive: true });
    mkdirSync(this.stateDir, { recursive: true });
    this.bootId = options.bootId ?? `${nodeId}-boot-1`;
    this.proc = this.spawn();
  }

  /** Starts the node's systemd sandbox, then its agent inside it. */
  static async start(cluster: TestCluster, nodeId: string, options: SandboxNodeOptions = {}): Promise<SandboxNode> {
    const sandbox = await startSystemdSandbox(nodeId);
    let node: SandboxNode;
    try {
      node = new SandboxNode(cluster, nodeId, sandbox, options);
    } catch (err) {
      await sandbox.stop();
      throw err;
    }
    if (options.waitRegistered ?? true) {
      try {
        await node.registered();
      } catch (err) {
        await node.stop();
        throw err;
      }
    }
    return node;
  }

  /** Where the user manager reads unit files (the agent's --systemd-unit-dir). */
  get unitDir(): string {
    return this.sandbox.unitDir;
  }

  private spawn(): ManagedProcess {
    this.starts++;
    const o = this.options;
    const sb = this.sandbox;
    const args = [
      '--etcd', this.cluster.etcd.endpoint,
      '--node-id', this.nodeId,
      '--state-dir', this.stateDir,
      '--lease-ttl', String(o.leaseTtlSec ?? this.cluster.leaseTtlSec),
      '--hostname', `host-${this.nodeId}`,
      '--boot-id', this.bootId,
      '--root', this.root,
      '--systemd-bus', 'session',
      '--systemd-unit-dir', sb.unitDir,
      // The agent joins the cluster with its first token (the certificate then lives in the state dir).
      '--join-token-file', this.cluster.joinTokenFile,
      ...this.cluster.joinAddressArgs(),
      // Many agents (and parallel test files) on one host: never the fixed default port 7402.
      ...(o.extraArgs?.includes('--metrics-listen') ? [] : ['--metrics-listen', '127.0.0.1:0']),
      ...(o.extraArgs ?? []),
    ];
    const env: NodeJS.ProcessEnv = {
      ...this.cluster.childEnv,
      HOME: sb.home,
      XDG_CONFIG_HOME: join(sb.home, '.config'),
      XDG_RUNTIME_DIR: sb.runtimeDir,
      DBUS_SESSION_BUS_ADDRESS: sb.busAddress,
      ...o.env,
    };
    return new ManagedProcess(
      `agent ${this.nodeId}#${this.starts}`,
      'nsenter',
      [`--target=${sb.managerPid}`, '--mount', '--', process.execPath, BIN.agent, ...args],
      { env, logFile: join(this.cluster.logDir, `agent-${this.nodeId}.log`) },
    );
  }

  /** Resolves when this start of the agent logged "registered". */
  async registered(timeoutMs = READY_TIMEOUT_MS): Promise<void> {
    await this.proc.waitForLog(/"msg":"registered"/, timeoutMs);
  }

  /** Resolves when this start of the agent holds a stream to a coordinator. */
  async connected(timeoutMs = READY_TIMEOUT_MS): Promise<void> {
    await this.proc.waitForLog(/"msg":"connected to coordinator"/, timeoutMs);
  }

  /** SIGKILL the agent only (the node's systemd and services keep running): a crashed agent. */
  async kill(): Promise<void> {
    await this.proc.kill('SIGKILL');
  }

  /**
   * SIGKILL and start again with the same root and state dir; a new `bootId` simulates a
   * reboot (the agent reports it, the coordinator's reload/stuck-node logic keys on it).
   */
  async restart(options: { bootId?: string; wait?: boolean } = {}): Promise<void> {
    if (this.proc.alive) await this.proc.kill('SIGKILL');
    if (options.bootId !== undefined) this.bootId = options.bootId;
    this.proc = this.spawn();
    if (options.wait ?? true) await this.registered();
  }

  /** Runs `bash -c command` inside the node's namespace (e.g. `systemctl --user is-active x`). */
  exec(command: string, timeoutMs = 30_000): Promise<RunResult> {
    return this.sandbox.exec(command, { timeoutMs });
  }

  /** `systemctl --user is-active UNIT` as the node's manager answers it (active, inactive, failed, ...). */
  async unitActiveState(unit: string): Promise<string> {
    return (await this.exec(`systemctl --user is-active ${unit}`)).stdout.trim();
  }

  /** The last lines of the node's systemd manager log (the agent's log is in the cluster's log dir). */
  managerLogTail(lines = 20): string {
    return this.sandbox.logs().trimEnd().split('\n').slice(-lines).join('\n');
  }

  /** Kills the agent, then the sandbox (its manager and every service in it). Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.proc.alive) {
      // A SIGSTOPped agent still dies of SIGKILL.
      await this.proc.kill('SIGKILL');
    }
    await this.sandbox.stop();
  }
}
