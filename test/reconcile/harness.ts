/**
 * The leader-side parts the reconcilers work with, in-process against a real etcd: a real
 * leader election (so every write is fenced for real), the event log, the node store, the
 * jobs engine's store and starter, and the config stores. One harness per test, on its own
 * key prefix.
 */
import { randomBytes } from 'node:crypto';
import type { Etcd3 } from 'etcd3';
import { useEtcd, waitFor } from '../helpers';
import { EventLog } from '../../coordinator/event-log';
import { LeaderElection } from '../../coordinator/leader-election';
import { NodeStore } from '../../coordinator/node-store';
import { JobStore } from '../../coordinator/jobs/job-store';
import { JobStarter } from '../../coordinator/jobs/job-starter';
import { ConfigReader } from '../../coordinator/jobs/config-records';
import { BundleStore } from '../../coordinator/config/bundle-store';
import { GroupStore, type GroupInput } from '../../coordinator/config/group-store';
import { createLogger, decodeEvent, decodeNode, DEFAULT_DEBOUNCE_MS, Keyspace, systemClock, type EventRecord, type ManualClock, type NodeRecord } from '../../shared';
import type { StartJobRequest__Output } from '../../generated/cluster/v1/StartJobRequest';

export const logger = createLogger({ level: process.env.TEST_LOG_LEVEL === 'debug' ? 'debug' : 'silent' });

/**
 * `waitFor` for a loop on a ManualClock: each poll moves the loop's clock on by one debounce,
 * so the passes its watch events asked for run, without sleeping for a debounce.
 */
export function until<T>(clock: ManualClock, what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 15_000): Promise<T> {
  return waitFor(what, async () => {
    await clock.advance(DEFAULT_DEBOUNCE_MS);
    return probe();
  }, { timeoutMs, intervalMs: 20 });
}

export const BUNDLE = `
name: base
version: 1
units:
  - id: motd
    kind: file
    path: /etc/motd
    content: "hello\\n"
`;

/** A loop under test: stopped by the harness before the harness stops. */
interface Stoppable {
  stop(): Promise<void>;
}

export class Harness {
  readonly events: EventLog;
  readonly election: LeaderElection;
  readonly nodes: NodeStore;
  readonly jobs: JobStore;
  readonly starter: JobStarter;
  readonly bundles: BundleStore;
  readonly groups: GroupStore;
  private readonly adopted: Stoppable[] = [];

  constructor(readonly client: Etcd3, readonly ks = new Keyspace(`/t-${randomBytes(4).toString('hex')}/`)) {
    const clock = systemClock;
    this.events = new EventLog({ client, keyspace: this.ks, clock, logger, actor: 'coordinator/test' });
    this.election = new LeaderElection({ client, keyspace: this.ks, replicaId: 'r1', address: '127.0.0.1:1', ttlMs: 3000, clock, logger });
    this.nodes = new NodeStore({ client, keyspace: this.ks, events: this.events, clock, fence: this.election });
    this.jobs = new JobStore({ client, keyspace: this.ks, events: this.events, logger });
    this.starter = new JobStarter({ client, keyspace: this.ks, store: this.jobs, config: new ConfigReader(client, this.ks), clock });
    this.bundles = new BundleStore({ client, keyspace: this.ks, events: this.events, clock });
    this.groups = new GroupStore({ client, keyspace: this.ks, events: this.events, clock, bundles: this.bundles });
  }

  async start(): Promise<this> {
    await this.election.start();
    await waitFor('the test replica to lead', () => this.election.isLeader(), { timeoutMs: 15_000 });
    return this;
  }

  /** Hands `loop` to the harness: `stop()` stops it (the last adopted first) before the election. */
  adopt<T extends Stoppable>(loop: T): T {
    this.adopted.push(loop);
    return loop;
  }

  async stop(): Promise<void> {
    for (const loop of this.adopted.splice(0).reverse()) await loop.stop();
    await this.election.stop();
    await this.events.stop();
  }

  isLeader = (): boolean => this.election.isLeader();

  async withGroup(over: Partial<GroupInput> = {}): Promise<void> {
    await this.bundles.push(BUNDLE);
    await this.groups.set({ name: 'worker', bundle: 'base', version: '1', ...over });
  }

  /**
   * Writes a node record as it stands in etcd (e.g. left behind by a crashed older leader):
   * a fixture, so it bypasses the transition checks on purpose.
   */
  async putNode(over: Partial<NodeRecord> & { id: string }): Promise<void> {
    const now = new Date().toISOString();
    const rec: NodeRecord = {
      state: 'Discovered', stateChangedAt: now, reachable: true, labels: {}, maintenance: false, connected: true,
      createdAt: now, updatedAt: now, bootId: 'boot-1', ...over,
    };
    await this.client.put(this.ks.node(rec.id)).value(JSON.stringify(rec)).exec();
  }

  async node(id: string): Promise<NodeRecord> {
    const text = await this.client.get(this.ks.node(id)).string();
    if (text === null) throw new Error(`node ${id} missing`);
    return decodeNode(this.ks.node(id), text);
  }

  async eventList(filter: (e: EventRecord) => boolean = () => true): Promise<EventRecord[]> {
    const all = await this.client.getAll().prefix(this.ks.eventsPrefix()).strings();
    return Object.entries(all).map(([k, v]) => decodeEvent(k, v)).filter(filter).sort((a, b) => a.seq - b.seq);
  }

  /** A StartJob request with every field at its empty value but `over`, to `starter` (default: the harness's). */
  startJob(over: Partial<StartJobRequest__Output>, starter: JobStarter = this.starter): ReturnType<JobStarter['start']> {
    return starter.start({
      kind: 'verify', nodeIds: [], labelSelector: '', factSelector: '', group: '', strategy: '', batch: '', maxFailures: 0, dryRun: false,
      force: false, extraVarsJson: '', bundle: '', argv: [], timeoutMs: 0, canary: 0, canarySoakMs: 0, soakMs: 0, probeIntervalMs: 0, probes: [], rollback: '', secretExtraVars: [], requestedBy: 'test', ...over,
    });
  }
}

/** What `useHarness` gives a suite: valid inside hooks and tests. */
export interface HarnessSuite {
  readonly client: Etcd3;
  /** The current test's harness, leading, on the test's own key prefix. */
  readonly h: Harness;
}

/**
 * One etcd per describe block (`useEtcd`) and a started Harness per test on that test's fresh
 * keyspace, stopped (with the loops it adopted) after the test. Call it before the suite's own hooks.
 */
export function useHarness(name: string): HarnessSuite {
  const etcd = useEtcd(name);
  let h: Harness | undefined;
  beforeEach(async () => {
    h = await new Harness(etcd.client, etcd.ks).start();
  });
  afterEach(async () => {
    await h?.stop();
    h = undefined;
  });
  return {
    get client() { return etcd.client; },
    get h() {
      if (!h) throw new Error(`useHarness(${name}): the harness is only there inside tests and their hooks`);
      return h;
    },
  };
}
