/**
 * A real 3-member etcd cluster on loopback (TESTBED.md: three processes with distinct ports and
 * one --initial-cluster), at etcd's DEFAULT raft timings (100 ms heartbeat, 1 s election), as in
 * production; and `moveLeader()`, etcdctl's move-leader, for a leader change on demand.
 * Secure like EtcdServer: TLS on client and peer URLs with client-certificate auth from the
 * process's test CA, and etcd authentication on (users root and coordinator).
 */
import { execFile } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Etcd3 } from 'etcd3';
import { etcdHealthy, exited, spawnEtcd, tailFile } from '../../scripts/lib/process-support';
import { freePort } from './ports';
import { Keyspace } from '../../shared/keyspace';
import { createEtcdClient, type EtcdTls } from '../../shared/etcd';
import { enableEtcdAuth, ETCD_ROOT_USER } from '../../shared/etcd-auth';
import { ETCD_BIN, writeEtcdServingFiles } from './etcd-server';
import { trackChild } from './children';
import { testPki } from './pki';
import { waitFor } from './wait';

const run = promisify(execFile);
const ETCDCTL = ETCD_BIN.replace(/etcd$/, 'etcdctl');

interface Member {
  name: string;
  clientPort: number;
  peerPort: number;
  proc: ChildProcess;
  exited: Promise<void>;
  logFile: string;
}

export class EtcdCluster {
  private readonly clients: Etcd3[] = [];

  private constructor(readonly baseDir: string, private readonly members: Member[], readonly rootTls: EtcdTls) {}

  static async start(name: string, size = 3): Promise<EtcdCluster> {
    const baseDir = mkdtempSync(join(tmpdir(), `etcd-cluster-${name}-`));
    const tls = await writeEtcdServingFiles(baseDir);
    const rootTls = await (await testPki()).etcdTls(ETCD_ROOT_USER);
    const ports: { name: string; clientPort: number; peerPort: number }[] = [];
    for (let i = 1; i <= size; i++) ports.push({ name: `${name}-${i}`, clientPort: await freePort(), peerPort: await freePort() });
    const initial = ports.map((p) => `${p.name}=https://127.0.0.1:${p.peerPort}`).join(',');
    const members: Member[] = ports.map((p) => {
      const logFile = join(baseDir, `${p.name}.log`);
      const { proc } = spawnEtcd({
        bin: ETCD_BIN, name: p.name, dataDir: join(baseDir, p.name), clientPort: p.clientPort, peerPort: p.peerPort, logFile, tls,
        // Later flags win: one cluster of `size` members instead of spawnEtcd's single member.
        extraArgs: ['--initial-cluster', initial, '--initial-cluster-state', 'new', '--initial-cluster-token', `tok-${name}`],
      });
      trackChild(proc);
      return { ...p, proc, exited: exited(proc), logFile };
    });
    const cluster = new EtcdCluster(baseDir, members, rootTls);
    for (const m of members) {
      await waitFor(`etcd member ${m.name} healthy`, async () => {
        if (m.proc.exitCode !== null) throw new Error(`etcd ${m.name} exited with ${m.proc.exitCode}: ${tailFile(m.logFile, 20)}`);
        return etcdHealthy(`https://127.0.0.1:${m.clientPort}`, 1000, rootTls);
      }, { timeoutMs: 30_000, intervalMs: 200 });
    }
    const root = cluster.client();
    try {
      await enableEtcdAuth(root, new Keyspace());
    } finally {
      root.close();
      cluster.clients.splice(cluster.clients.indexOf(root), 1);
    }
    return cluster;
  }

  get endpoints(): string[] {
    return this.members.map((m) => `127.0.0.1:${m.clientPort}`);
  }

  /** Every member, comma-separated: the form every --etcd flag takes. */
  get endpoint(): string {
    return this.endpoints.join(',');
  }

  client(): Etcd3 {
    const c = createEtcdClient({ endpoints: this.endpoints, tls: this.rootTls, dialTimeoutMs: 2000 });
    this.clients.push(c);
    return c;
  }

  /** etcdctl's TLS flags: root's certificate (written once into the cluster's dir). */
  private etcdctlTls(): string[] {
    const file = (n: string, pem: string): string => {
      const path = join(this.baseDir, n);
      writeFileSync(path, pem, { mode: 0o600 });
      return path;
    };
    return ['--cacert', file('ctl-ca.crt', this.rootTls.caPem), '--cert', file('ctl-root.crt', this.rootTls.certPem), '--key', file('ctl-root.key', this.rootTls.keyPem)];
  }

  private httpsEndpoints(): string {
    return this.endpoints.map((e) => `https://${e}`).join(',');
  }

  /** Each member's id (hex) and whether it leads, from `etcdctl endpoint status`. */
  async status(): Promise<{ endpoint: string; id: string; leader: boolean }[]> {
    const { stdout } = await run(ETCDCTL, [...this.etcdctlTls(), '--endpoints', this.httpsEndpoints(), 'endpoint', 'status', '-w', 'json'], { env: { ...process.env, ETCDCTL_API: '3' }, timeout: 10_000 });
    const rows = JSON.parse(stdout) as { Endpoint: string; Status: { header: { member_id: number | string }; leader: number | string } }[];
    // JSON numbers above 2^53 lose digits: read the ids from the text instead.
    const ids = [...stdout.matchAll(/"member_id":(\d+)/g)].map((m) => BigInt(m[1]));
    const leaders = [...stdout.matchAll(/"leader":(\d+)/g)].map((m) => BigInt(m[1]));
    return rows.map((r, i) => ({ endpoint: r.Endpoint, id: ids[i].toString(16), leader: ids[i] === leaders[i] }));
  }

  /** Moves raft leadership to another member (etcdctl move-leader); returns the endpoints. */
  async moveLeader(): Promise<{ from: string; to: string }> {
    const members = await this.status();
    const leader = members.find((m) => m.leader);
    const target = members.find((m) => !m.leader);
    if (!leader || !target) throw new Error(`no leader or no follower among ${JSON.stringify(members)}`);
    await run(ETCDCTL, [...this.etcdctlTls(), '--endpoints', leader.endpoint, 'move-leader', target.id], { env: { ...process.env, ETCDCTL_API: '3' }, timeout: 15_000 });
    return { from: leader.endpoint, to: target.endpoint };
  }

  tail(lines = 20): string {
    return this.members.map((m) => `--- ${m.name}\n${tailFile(m.logFile, lines)}`).join('\n');
  }

  async destroy(): Promise<void> {
    for (const c of this.clients) c.close();
    for (const m of this.members) m.proc.kill('SIGKILL');
    await Promise.all(this.members.map((m) => m.exited));
    rmSync(this.baseDir, { recursive: true, force: true });
  }
}
