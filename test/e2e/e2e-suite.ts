/**
 * The hooks every end-to-end suite shares: one real etcd per suite, one TestCluster (temp dir,
 * logs, processes) per test, and on failure the tail of every process log and of etcd's log
 * printed under the test — a failing e2e test without its logs is a guessing game.
 */
import type { Context } from 'mocha';
import { EtcdServer, TestCluster, wipeEtcd, type EtcdStartOptions, type TestClusterOptions } from '../helpers';

export interface E2eSuite {
  /** The suite's etcd (running unless a test stopped it). */
  readonly etcd: EtcdServer;
  /** A fresh cluster for the current test; destroyed (processes killed) after it. */
  cluster(options?: TestClusterOptions): TestCluster;
  /** `cluster()` with one coordinator started and leading: where most tests begin. */
  startCluster(options?: TestClusterOptions): Promise<TestCluster>;
}

/**
 * Call inside a `describe`: installs before/afterEach/after hooks and returns the accessors.
 * `etcdOptions`: how the suite's etcd is started (e.g. extra flags).
 */
export function e2eSuite(name: string, etcdOptions: EtcdStartOptions = {}): E2eSuite {
  let etcd: EtcdServer | undefined;
  let current: TestCluster | undefined;

  before(async function (this: Context) {
    this.timeout(60_000);
    etcd = await EtcdServer.start(name, etcdOptions);
  });

  afterEach(async function (this: Context) {
    this.timeout(60_000);
    const test = this.currentTest;
    if (test?.state === 'failed') {
      const logs = current?.logTails(40) ?? '(no cluster started)';
      console.error(`\n===== logs of failed test "${test.fullTitle()}" =====\n${logs}\n----- etcd (last 20 lines) -----\n${etcd?.tail(20) ?? ''}\n=====\n`);
    }
    await current?.destroy();
    current = undefined;
    if (etcd) {
      // A test may have stopped etcd; the next one starts from an empty, running etcd.
      if (!etcd.running) await etcd.start();
      const client = etcd.client();
      await wipeEtcd(client);
    }
  });

  after(async () => {
    await current?.destroy();
    await etcd?.destroy();
  });

  function cluster(options: TestClusterOptions = {}): TestCluster {
    if (!etcd) throw new Error('etcd not started');
    if (current) throw new Error('one cluster per test');
    current = new TestCluster(etcd, { name: options.name ?? name, ...options });
    return current;
  }

  return {
    get etcd(): EtcdServer {
      if (!etcd) throw new Error('etcd not started (use inside the describe)');
      return etcd;
    },
    cluster,
    async startCluster(options: TestClusterOptions = {}): Promise<TestCluster> {
      const started = cluster(options);
      await started.startCoordinator();
      return started;
    },
  };
}
