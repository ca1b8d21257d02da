/**
 * Hooks and builders every lifecycle e2e suite shares: one real etcd per suite; per test a
 * TestCluster (coordinator PROCESSES, log dir), sandbox nodes (an agent process inside its own
 * systemd user manager's mount namespace, test/helpers/sandbox-node.ts) and gRPC clients. On
 * failure the tail of every process log, every node's manager log and etcd's log is printed
 * under the test; everything is torn down after each test even when it failed.
 */
import type { Context } from 'mocha';
import type { Etcd3 } from 'etcd3';
import { EtcdServer, SandboxNode, TestCluster, wipeEtcd, type CoordinatorHandle, type SandboxNodeOptions } from '../helpers';
import { LifecycleApi } from './lifecycle-api';
import { appBundle, BUNDLE, GROUP, waitNodes } from './lifecycle-fixtures';

/** Short timings so failover, lease expiry and pings fit a test (the DESIGN's defaults are for production). */
export const COORDINATOR_ARGS = ['--election-ttl', '3', '--ping-interval', '1', '--resync-interval', '2', '--log-level', 'debug'] as const;
export const LEASE_TTL_SEC = 3;

export interface LifecycleSuite {
  readonly etcd: EtcdServer;
  /** An etcd client for reading what is stored (closed with the suite). */
  readonly client: Etcd3;
  /** The current test's cluster (created on first use). */
  cluster(): TestCluster;
  /** Starts a coordinator process (waits for "became leader" unless `waitLeader` is false). */
  coordinator(options?: { waitLeader?: boolean; extraArgs?: readonly string[] }): Promise<CoordinatorHandle>;
  /** Starts a sandbox node (systemd user manager + agent process inside it). */
  node(nodeId: string, options?: SandboxNodeOptions): Promise<SandboxNode>;
  /** Sandbox nodes in parallel. */
  nodes(ids: readonly string[], options?: SandboxNodeOptions): Promise<SandboxNode[]>;
  /** A gRPC client of one replica (default: the first coordinator); closed after the test. */
  api(address?: string): LifecycleApi;
}

export function lifecycleSuite(name: string): LifecycleSuite {
  let etcd: EtcdServer | undefined;
  let client: Etcd3 | undefined;
  let current: TestCluster | undefined;
  let sandboxes: SandboxNode[] = [];
  let apis: LifecycleApi[] = [];

  before(async function (this: Context) {
    this.timeout(60_000);
    etcd = await EtcdServer.start(name);
    client = etcd.client();
  });

  afterEach(async function (this: Context) {
    this.timeout(90_000);
    const test = this.currentTest;
    if (test?.state === 'failed') {
      const managers = sandboxes.map((n) => `----- systemd user manager of ${n.nodeId} (last 15 lines) -----\n${n.managerLogTail(15)}`).join('\n');
      console.error(`\n===== logs of failed test "${test.fullTitle()}" =====\n${current?.logTails(60) ?? '(no cluster started)'}\n${managers}\n----- etcd (last 20 lines) -----\n${etcd?.tail(20) ?? ''}\n=====\n`);
    }
    for (const a of apis) a.close();
    apis = [];
    // Agents first (they would log reconnect noise), then their sandboxes, then coordinators.
    await Promise.all(sandboxes.map((n) => n.stop()));
    sandboxes = [];
    // A SIGSTOPped coordinator dies of SIGKILL too (destroy sends SIGKILL).
    await current?.destroy();
    current = undefined;
    if (etcd && client) {
      if (!etcd.running) await etcd.start();
      await wipeEtcd(client);
    }
  });

  after(async function (this: Context) {
    this.timeout(60_000);
    await Promise.all(sandboxes.map((n) => n.stop()));
    await current?.destroy();
    client?.close();
    await etcd?.destroy();
  });

  const cluster = (): TestCluster => {
    if (!etcd) throw new Error('etcd not started (use inside the describe)');
    current ??= new TestCluster(etcd, { name, leaseTtlSec: LEASE_TTL_SEC });
    return current;
  };

  const suite: LifecycleSuite = {
    get etcd(): EtcdServer {
      if (!etcd) throw new Error('etcd not started');
      return etcd;
    },
    get client(): Etcd3 {
      if (!client) throw new Error('etcd not started');
      return client;
    },
    cluster,
    async coordinator(options = {}) {
      return cluster().startCoordinator({ extraArgs: [...COORDINATOR_ARGS, ...(options.extraArgs ?? [])], waitLeader: options.waitLeader ?? true });
    },
    async node(nodeId, options = {}) {
      const n = await SandboxNode.start(cluster(), nodeId, options);
      sandboxes.push(n);
      return n;
    },
    async nodes(ids, options = {}) {
      return Promise.all(ids.map((id) => suite.node(id, options)));
    },
    api(address) {
      const a = new LifecycleApi(address ?? cluster().coordinatorAddress, cluster().adminCredentials);
      apis.push(a);
      return a;
    },
  };
  return suite;
}

/**
 * The usual start of a test: one coordinator (unless `coordinators` says more; the first leads),
 * bundle versions pushed, group `app` on version 1, sandbox nodes Discovered and connected.
 */
export async function prepare(
  s: LifecycleSuite,
  ids: readonly string[],
  options: { versions?: readonly number[]; coordinators?: number; node?: SandboxNodeOptions } = {},
): Promise<{ api: LifecycleApi; nodes: Map<string, SandboxNode>; coordinators: CoordinatorHandle[] }> {
  const coordinators = [await s.coordinator()];
  for (let i = 1; i < (options.coordinators ?? 1); i++) coordinators.push(await s.coordinator({ waitLeader: false }));
  const api = s.api();
  for (const v of options.versions ?? [1]) await api.pushBundle(appBundle(v));
  await api.setGroup({ name: GROUP, bundle: BUNDLE, version: String((options.versions ?? [1])[0]) });
  const started = await s.nodes(ids, options.node);
  await waitNodes(s.client, ids);
  return { api, nodes: new Map(started.map((n) => [n.nodeId, n])), coordinators };
}
