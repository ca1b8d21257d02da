/**
 * End to end, real processes and real TLS: how an agent gets, keeps, renews and loses its
 * certificate. The coordinator creates the CA and the first join token in the cluster's pki dir;
 * agents join with tokens made by `clusterctl token create`; the agent's files are read back
 * from its state dir.
 */
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parsePeerCertificate, serverCredentials } from '../../shared/pki';
import { loadProto } from '../../shared/proto';
import { KEYSPACE } from './e2e-etcd';
import { ClusterCa } from '../../shared/pki/cluster-ca';
import { waitFor } from '../helpers';
import type { AgentHandle, TestCluster } from '../helpers';
import { e2eSuite } from './e2e-suite';

/** A gRPC server with valid TLS but a coordinator certificate of ANOTHER CA; counts the streams that reach it. */
async function rogueCoordinator(): Promise<{ address: string; streams: () => number; stop: () => void }> {
  const other = (await ClusterCa.create()).ca;
  const serving = await other.issueKeyAndCertificate({ role: 'coordinator', name: 'rogue' });
  const server = new grpc.Server();
  let streams = 0;
  server.addService(loadProto().api.cluster.v1.AgentService.service, {
    Connect: (call: grpc.ServerDuplexStream<unknown, unknown>) => { streams++; call.on('error', () => undefined); },
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', serverCredentials({ caPem: other.certPem, certPem: serving.certPem, keyPem: serving.keyPem }), (err, p) => (err ? reject(err) : resolve(p)));
  });
  return { address: `127.0.0.1:${port}`, streams: () => streams, stop: () => server.forceShutdown() };
}

const NOT_JOINED = /this agent has not joined the cluster: start it once with --join-token \(clusterctl token create prints one\)/;

function pkiFile(a: AgentHandle, name: string): string {
  return join(a.stateDir, 'pki', name);
}

function serialOf(a: AgentHandle): string {
  return parsePeerCertificate(readFileSync(pkiFile(a, 'node.crt'), 'utf8')).serial;
}

function count(text: string, re: RegExp): number {
  return text.split('\n').filter((l) => re.test(l)).length;
}

async function token(cluster: TestCluster, args: readonly string[] = []): Promise<string> {
  const r = await cluster.ctl(['token', 'create', ...args]);
  expect(r.code, r.stderr).to.equal(0);
  return r.stdout.trim();
}

/** Starts an agent with `tokenText` (and not the cluster's own token) and waits for it to exit. */
async function joinAndExit(cluster: TestCluster, nodeId: string, tokenText: string): Promise<{ code: number | null; logs: string; agent: AgentHandle }> {
  const agent = await cluster.startAgent(nodeId, { joinWithClusterToken: false, waitRegistered: false, extraArgs: ['--join-token', tokenText] });
  const exit = await Promise.race([agent.proc.exited, new Promise<undefined>((r) => { setTimeout(() => r(undefined), 30_000); })]);
  if (!exit) throw new Error(`agent ${nodeId} did not exit within 30 s:\n${agent.proc.logs.slice(-2000)}`);
  return { code: exit.code, logs: agent.proc.logs, agent };
}

describe('e2e: agent trust (join, restart, renewal, revocation)', function () {
  this.timeout(180_000);
  const suite = e2eSuite('agent-trust');

  it('joins with a valid token, keeps key (0600), certificate and CA in its state dir, and restarts without a token', async () => {
    const cluster = await suite.startCluster({ name: 'trust-join' });
    const a = await cluster.startAgent('n1');
    await a.proc.waitForLog(/"msg":"connected to coordinator"/, 30_000);
    expect(a.proc.logs).to.match(/"msg":"joined the cluster"/);

    expect(statSync(join(a.stateDir, 'pki')).mode & 0o777).to.equal(0o700);
    expect(statSync(pkiFile(a, 'node.key')).mode & 0o777).to.equal(0o600);
    expect(readFileSync(pkiFile(a, 'ca.crt'), 'utf8').trim()).to.equal(readFileSync(join(cluster.pkiDir, 'ca.crt'), 'utf8').trim());
    const cert = new X509Certificate(readFileSync(pkiFile(a, 'node.crt'), 'utf8'));
    expect(parsePeerCertificate(cert)).to.include({ role: 'agent', name: 'n1' });
    expect(cert.verify(new X509Certificate(readFileSync(join(cluster.pkiDir, 'ca.crt'))).publicKey)).to.equal(true);
    const serial = serialOf(a);

    // No token at all this time: the stored certificate is enough.
    a.options.joinWithClusterToken = false;
    await a.restart();
    await a.proc.waitForLog(/"msg":"connected to coordinator"/, 30_000);
    expect(a.proc.logs).not.to.match(/"msg":"joining the cluster with a token"/);
    expect(serialOf(a)).to.equal(serial);
    await cluster.waitForNodes('n1 reachable', (ns) => ns.some((n) => n.id === 'n1' && n.reachable));
  });

  it('without a certificate and without a token: exits 1 saying how to join', async () => {
    const cluster = await suite.startCluster({ name: 'trust-none' });
    const a = await cluster.startAgent('n1', { joinWithClusterToken: false, waitRegistered: false });
    const exit = await a.proc.exited;
    expect(exit.code).to.equal(1);
    expect(a.proc.logs).to.match(NOT_JOINED);
    expect(a.proc.logs).not.to.match(/"msg":"registered"/);
  });

  it('expired, used-up, revoked and wrong-CA tokens are refused with a reason an operator can act on; the agent exits 1', async () => {
    const cluster = await suite.startCluster({ name: 'trust-tokens' });

    const expired = await token(cluster, ['--ttl', '1s']);
    const once = await token(cluster, ['--uses', '1']);
    const revoked = await token(cluster);
    const revokedId = /::([a-z0-9]{6})\./.exec(revoked)?.[1] ?? '';
    const r = await cluster.ctl(['token', 'revoke', revokedId]);
    expect(r.code, r.stderr).to.equal(0);
    // The same cluster secret with the hash of a CA this cluster does not have: a token for another cluster.
    const otherHash = (await ClusterCa.create()).ca.publicKeyHash;
    const wrongCa = revoked.replace(/^K10[0-9a-f]{64}/, `K10${otherHash}`);
    await new Promise((res) => setTimeout(res, 1500));

    const cases: [string, string, RegExp][] = [
      ['expired', expired, /join token [a-z0-9]{6} expired at .*clusterctl token create/],
      ['revoked', revoked, /join token [a-z0-9]{6} was revoked: .*clusterctl token create/],
      ['wrong CA', wrongCa, /does not present the CA this join token pins .*the token is for another cluster, or someone is in the middle/],
    ];
    // The one use of `once` goes to u1; u2 then finds it used up.
    const u1 = await cluster.startAgent('u1', { joinWithClusterToken: false, extraArgs: ['--join-token', once] });
    await u1.proc.waitForLog(/"msg":"connected to coordinator"/, 30_000);
    cases.push(['used up', once, /join token [a-z0-9]{6} is used up: .*clusterctl token create/]);

    for (const [what, text, reason] of cases) {
      const nodeId = `bad-${what.replace(/ /g, '-')}`;
      const out = await joinAndExit(cluster, nodeId, text);
      expect(out.code, `${what}: exit code\n${out.logs}`).to.equal(1);
      expect(out.logs, what).to.match(reason);
      expect(existsSync(pkiFile(out.agent, 'node.crt')), `${what}: no certificate stored`).to.equal(false);
      expect(out.logs, what).not.to.match(/"msg":"registered"/);
    }
    const nodes = await cluster.nodes();
    expect(nodes.map((n) => n.id)).to.deep.equal(['u1']);
  });

  it('renews a short-lived certificate before it expires: a new serial on disk, and the stream comes back with it', async () => {
    const cluster = suite.cluster({ name: 'trust-renew' });
    await cluster.startCoordinator({ extraArgs: ['--agent-cert-validity', '30s'] });
    const a = await cluster.startAgent('n1');
    await a.proc.waitForLog(/"msg":"connected to coordinator"/, 30_000);
    const first = serialOf(a);
    const cert = new X509Certificate(readFileSync(pkiFile(a, 'node.crt'), 'utf8'));
    expect(Date.parse(cert.validTo) - Date.now()).to.be.within(10_000, 31_000);

    // Two thirds of 30 s after it was stored.
    await a.proc.waitForLog(/"msg":"certificate renewed"/, 40_000);
    await waitFor('the stream back with the new certificate', () => count(a.proc.logs, /"msg":"connected to coordinator"/) >= 2, { timeoutMs: 20_000 });
    expect(a.proc.logs).to.match(/"msg":"reconnecting with the renewed certificate"/);
    const second = serialOf(a);
    expect(second).not.to.equal(first);
    expect(statSync(pkiFile(a, 'node.key')).mode & 0o777).to.equal(0o600);
    // Still connected and reachable once the first certificate has expired.
    await new Promise((res) => setTimeout(res, Math.max(0, Date.parse(cert.validTo) - Date.now()) + 1000));
    const n1 = await cluster.waitForNodes('n1 reachable after the first certificate expired', (ns) => ns.some((n) => n.id === 'n1' && n.reachable));
    expect(n1.find((n) => n.id === 'n1')?.reachable).to.equal(true);
    expect(a.proc.alive).to.equal(true);
  });

  it('after a renewal the agent reaches etcd with the new certificate: with the first one expired and etcd restarted (every connection new), its lease and member key carry on', async () => {
    const cluster = suite.cluster({ name: 'trust-renew-etcd' });
    await cluster.startCoordinator({ extraArgs: ['--agent-cert-validity', '30s'] });
    const a = await cluster.startAgent('n1');
    await a.proc.waitForLog(/"msg":"connected to coordinator"/, 30_000);
    const cert = new X509Certificate(readFileSync(pkiFile(a, 'node.crt'), 'utf8'));
    await a.proc.waitForLog(/"msg":"certificate renewed"/, 40_000);
    await new Promise((res) => setTimeout(res, Math.max(0, Date.parse(cert.validTo) - Date.now()) + 1000));
    const root = suite.etcd.client();
    const before = await root.get(KEYSPACE.member('n1')).exec();
    expect(before.kvs, 'the member key before the restart').to.have.length(1);
    const lease = before.kvs[0].lease;

    // A restarted etcd takes only new TLS connections: each presents the agent's certificate as it is now.
    await suite.etcd.stop();
    await suite.etcd.start();
    // Three lease TTLs: long enough for a lease that is not renewed to expire (etcd extends every lease by its TTL at restart).
    await new Promise((res) => setTimeout(res, 3 * cluster.leaseTtlSec * 1000 + 1000));
    const after = await waitFor('the member key read after the restart', async () => (await suite.etcd.client().get(KEYSPACE.member('n1')).exec()).kvs, { timeoutMs: 10_000 });
    expect(after, 'the member key after the restart').to.have.length(1);
    expect(after[0].lease, 'the same lease, kept alive through the new client').to.equal(lease);
    expect(a.proc.logs).not.to.match(/"msg":"lease lost"/);
    const n1 = await cluster.waitForNodes('n1 reachable', (ns) => ns.some((n) => n.id === 'n1' && n.reachable), 30_000);
    expect(n1.find((n) => n.id === 'n1')?.reachable).to.equal(true);
  });

  it('clusterctl node revoke closes the live stream and the agent cannot reconnect', async () => {
    const cluster = suite.cluster({ name: 'trust-revoke' });
    const coordinator = await cluster.startCoordinator();
    const a = await cluster.startAgent('n1');
    await a.proc.waitForLog(/"msg":"connected to coordinator"/, 30_000);

    const r = await cluster.ctl(['node', 'revoke', 'n1']);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.match(/node n1 revoked \(1 certificate\(s\)\)/);
    await coordinator.proc.waitForLog(/"msg":"closed the stream of a revoked certificate"/, 10_000);
    await a.proc.waitForLog(/"msg":"the coordinator refuses this agent's certificate".*has been revoked/, 30_000);
    const connects = count(a.proc.logs, /"msg":"connected to coordinator"/);
    // Several redials (1 s backoff and up) later, still no stream.
    await new Promise((res) => setTimeout(res, 5000));
    expect(count(a.proc.logs, /"msg":"connected to coordinator"/)).to.equal(connects);
    expect(count(coordinator.proc.logs, /"msg":"agent connected"/)).to.be.at.most(1);
  });

  it('a rogue coordinator (another CA) named in the election record: the agent process refuses it, says so, and finds the real one', async () => {
    const cluster = suite.cluster({ name: 'trust-rogue' });
    const c1 = await cluster.startCoordinator({ extraArgs: ['--election-ttl', '3'] });
    const a = await cluster.startAgent('n1');
    await a.proc.waitForLog(/"msg":"connected to coordinator"/, 30_000);
    const rogue = await rogueCoordinator();
    try {
      // The leader dies; whoever can write the election prefix names the rogue.
      await c1.kill();
      const client = suite.etcd.client();
      await client.put(KEYSPACE.electionCandidate('rogue')).value(JSON.stringify({ id: 'rogue', address: rogue.address, startedAt: new Date().toISOString() }));
      await a.proc.waitForLog(/"msg":"refused the coordinator named in the election record: its certificate is not a cluster coordinator's"/, 30_000);
      expect(a.proc.logs).to.match(new RegExp(`"address":"${rogue.address}"`));

      // A real replica comes up; the rogue record goes: the agent is back on the cluster's coordinator.
      const c2 = await cluster.startCoordinator({ extraArgs: ['--election-ttl', '3'], waitLeader: false });
      await client.delete().key(KEYSPACE.electionCandidate('rogue'));
      await c2.ready(true);
      await waitFor('the agent back on c2', () => count(a.proc.logs, /"msg":"connected to coordinator"/) >= 2, { timeoutMs: 30_000 });
      expect(rogue.streams(), 'no stream ever reached the rogue').to.equal(0);
    } finally {
      rogue.stop();
    }
  });
});
