/**
 * A real etcd (Debian's etcd-server) per suite, on free loopback ports with a temp data dir
 * (TESTBED.md). `stop()` + `start()` keep the data dir, so an outage can be simulated and
 * healed with the data intact; `destroy()` removes it.
 *
 * Secure as in production: TLS with client-certificate auth, certificates of the process's
 * test CA (helpers/pki.ts), and etcd authentication enabled (shared/etcd-auth.ts: users root
 * and coordinator). `client()` is root; `tls(user)` gives another user's credentials, and a
 * TestCluster's pki dir makes its coordinators speak to this etcd as `coordinator`.
 */
import type { ChildProcess } from 'node:child_process';
import { request as httpsRequest } from 'node:https';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { randomBytes } from 'node:crypto';
import { Keyspace } from '../../shared/keyspace';
import { etcdHealthy, exited, findEtcd, spawnEtcd, tailFile } from '../../scripts/lib/process-support';
import { trackChild } from './children';
import { freePort } from './ports';
import type { EtcdTls } from '../../shared/etcd';
import { GRPC_OPTIONS } from '../../shared/grpc-limits';
import { enableEtcdAuth, ETCD_ROOT_USER } from '../../shared/etcd-auth';
import { writeFileSync } from 'node:fs';
import { ETCD_SERVER_NAME } from '../../shared/pki/cluster-ca';
import { testPki } from './pki';
import { waitFor } from './wait';

export const ETCD_BIN = findEtcd() ?? '/usr/bin/etcd';

/** Where an etcd of the test CA finds its CA and serving certificate, under `dir`. */
export function etcdServingFiles(dir: string): { caFile: string; certFile: string; keyFile: string } {
  return { caFile: join(dir, 'ca.crt'), certFile: join(dir, 'server.crt'), keyFile: join(dir, 'server.key') };
}

/** Writes the test CA and etcd's serving certificate (names etcd, localhost, 127.0.0.1) into `dir`. */
export async function writeEtcdServingFiles(dir: string): Promise<{ caFile: string; certFile: string; keyFile: string }> {
  const pki = await testPki();
  const serving = await pki.etcdIdentity('server');
  const files = etcdServingFiles(dir);
  writeFileSync(files.caFile, pki.caPem);
  writeFileSync(files.certFile, serving.certPem);
  writeFileSync(files.keyFile, serving.keyPem, { mode: 0o600 });
  return files;
}

export interface EtcdStartOptions {
  /**
   * More etcd flags after the test defaults, kept across stop() and start(): e.g.
   * `['--max-txn-ops', '16']` for an etcd with a lower limit than its default.
   */
  extraArgs?: readonly string[];
}

export class EtcdServer {
  readonly dataDir: string;
  readonly logFile: string;
  private proc?: ChildProcess;
  private exited?: Promise<void>;
  private clients: Etcd3[] = [];
  private authEnabled = false;

  private constructor(
    readonly name: string, readonly clientPort: number, readonly peerPort: number, readonly baseDir: string, readonly rootTls: EtcdTls,
    private readonly options: EtcdStartOptions,
  ) {
    this.dataDir = join(baseDir, 'data');
    this.logFile = join(baseDir, 'etcd.log');
  }

  static async start(name = 'test', options: EtcdStartOptions = {}): Promise<EtcdServer> {
    const baseDir = mkdtempSync(join(tmpdir(), `etcd-${name}-`));
    await writeEtcdServingFiles(baseDir);
    const server = new EtcdServer(name, await freePort(), await freePort(), baseDir, await (await testPki()).etcdTls(ETCD_ROOT_USER), options);
    await server.start();
    return server;
  }

  /** The etcd credentials of `user` (root, coordinator) from the test CA. */
  async tls(user: string): Promise<EtcdTls> {
    return (await testPki()).etcdTls(user);
  }

  /** host:port, the form every --etcd flag takes. */
  get endpoint(): string {
    return `127.0.0.1:${this.clientPort}`;
  }

  get running(): boolean {
    return this.proc !== undefined;
  }

  async start(): Promise<void> {
    if (this.proc) return;
    const { proc, url } = spawnEtcd({
      bin: ETCD_BIN, name: this.name, dataDir: this.dataDir, clientPort: this.clientPort, peerPort: this.peerPort, logFile: this.logFile,
      tls: etcdServingFiles(this.baseDir),
      // Small and fast: tests wait for leases of 2-3 s to expire.
      extraArgs: ['--heartbeat-interval', '50', '--election-timeout', '500', ...(this.options.extraArgs ?? [])],
    });
    this.proc = proc;
    trackChild(proc);
    this.exited = exited(proc);
    await waitFor(`etcd on ${url} to answer`, async () => {
      if (proc.exitCode !== null) throw new Error(`etcd exited with ${proc.exitCode}: ${this.tail()}`);
      return etcdHealthy(url, 500, this.rootTls);
    }, { timeoutMs: 20_000, intervalMs: 100 });
    if (!this.authEnabled) {
      const root = this.clientAs(this.rootTls);
      try {
        await enableEtcdAuth(root, new Keyspace());
      } finally {
        root.close();
        this.clients = this.clients.filter((c) => c !== root);
      }
      this.authEnabled = true;
    }
  }

  /** A root client for test assertions; closed by `destroy()`. */
  client(): Etcd3 {
    return this.clientAs(this.rootTls);
  }

  /** A client presenting `tls` (an agent's certificate, another user's); closed by `destroy()`. */
  clientAs(tls: EtcdTls): Etcd3 {
    const c = new Etcd3({
      hosts: `https://${this.endpoint}`, dialTimeout: 2000,
      grpcOptions: { ...GRPC_OPTIONS, 'grpc.ssl_target_name_override': ETCD_SERVER_NAME, 'grpc.default_authority': ETCD_SERVER_NAME },
      credentials: { rootCertificate: Buffer.from(tls.caPem), certChain: Buffer.from(tls.certPem), privateKey: Buffer.from(tls.keyPem) },
    });
    this.clients.push(c);
    return c;
  }

  /**
   * A gauge or counter from etcd's own /metrics (served on the client URL, behind the same TLS
   * client-certificate auth as every call), e.g. `etcd_debugging_mvcc_watcher_total`: the watchers
   * etcd holds open, over every client.
   */
  async metric(name: string): Promise<number> {
    const tls = this.rootTls;
    const text = await new Promise<string>((resolve, reject) => {
      const req = httpsRequest(`https://${this.endpoint}/metrics`, { ca: tls.caPem, cert: tls.certPem, key: tls.keyPem, servername: ETCD_SERVER_NAME, timeout: 5000 }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => { body += d; });
        res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`etcd /metrics answered ${res.statusCode}`))));
      });
      req.on('timeout', () => req.destroy(new Error('etcd /metrics timed out')));
      req.on('error', reject);
      req.end();
    });
    const line = text.split('\n').find((l) => l.startsWith(`${name} `));
    if (!line) throw new Error(`etcd /metrics has no ${name}`);
    return Number(line.slice(name.length + 1));
  }

  /** SIGSTOP: the port still accepts connections (the kernel's backlog) but nothing answers. */
  freeze(): void {
    this.proc?.kill('SIGSTOP');
  }

  /** SIGCONT after freeze(). */
  thaw(): void {
    this.proc?.kill('SIGCONT');
  }

  /** SIGTERM (or SIGKILL) and wait for the process to exit; the data dir stays. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const proc = this.proc;
    if (!proc) return;
    this.proc = undefined;
    proc.kill(signal);
    await this.exited;
  }

  async destroy(): Promise<void> {
    for (const c of this.clients) c.close();
    this.clients = [];
    await this.stop('SIGKILL');
    rmSync(this.baseDir, { recursive: true, force: true });
  }

  tail(lines = 20): string {
    return tailFile(this.logFile, lines);
  }
}

/** What `useEtcd` gives a suite: valid inside hooks and tests, not at describe time. */
export interface EtcdSuite {
  readonly etcd: EtcdServer;
  /** A client of that etcd (closed when the suite ends). */
  readonly client: Etcd3;
  /** A fresh random key prefix for each test, so tests share the etcd but not keys. */
  readonly ks: Keyspace;
}

/**
 * One etcd per describe block (started before its tests, destroyed after them) and a fresh
 * Keyspace before each test. Call it at the top of the describe, before its own hooks.
 */
export function useEtcd(name: string): EtcdSuite {
  let etcd: EtcdServer | undefined;
  let client: Etcd3 | undefined;
  let ks: Keyspace | undefined;
  const need = <T>(v: T | undefined, what: string): T => {
    if (v === undefined) throw new Error(`useEtcd(${name}): ${what} is only there inside hooks and tests`);
    return v;
  };
  before(async () => {
    etcd = await EtcdServer.start(name);
    client = etcd.client();
  });
  after(async () => {
    await etcd?.destroy();
  });
  beforeEach(() => {
    ks = new Keyspace(`/t-${randomBytes(4).toString('hex')}/`);
  });
  return {
    get etcd() { return need(etcd, 'etcd'); },
    get client() { return need(client, 'client'); },
    get ks() { return need(ks, 'ks'); },
  };
}
