/**
 * What an idle agent keeps loaded (issue 12 §7, RSS ≤ 60 MB): a real agent that has just joined
 * with a token, inspected by the memory probe preloaded into it (test/helpers/memory-probe.ts,
 * the same one `bench/agent-cost.js --breakdown` uses). The join's key and CSR are made with
 * node:crypto (shared/pki/csr.ts): the x509 library, its ASN.1 schemas and reflect-metadata stay
 * out of the agent (they held ~3.3 MiB of its RSS for good), and dbus-next waits for a systemd unit.
 * Its hardware facts are collected in a child process (agent/facts-provider.ts): systeminformation
 * never enters the agent.
 *
 * The CSR itself is checked with the reader the coordinator uses (x509, cluster-ca.ts readCsr).
 */
import { expect } from 'chai';
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Facts } from '../../shared/facts';
import { Keyspace } from '../../shared/keyspace';
import { ClusterCa, readCsr } from '../../shared/pki/cluster-ca';
import { createKeyAndCsr } from '../../shared/pki/csr';
import { EtcdServer, TestCluster, expectReject, testPki, waitFor } from '../helpers';
import { MEMORY_PROBE, type MemoryBreakdown } from '../helpers/memory-probe';

describe('agent footprint: a joined agent keeps only what it uses', function () {
  this.timeout(120_000);

  it('a CSR made with node:crypto is read and verified by the coordinator\'s reader, and the CA issues for its key', async () => {
    const { ca } = await ClusterCa.create();
    // 200 characters: the name, and so the request, need DER's long-form lengths.
    for (const name of ['node-1', `n${'x'.repeat(199)}`]) {
      const { keyPem, csrPem } = await createKeyAndCsr(name);
      expect(csrPem).to.match(/^-----BEGIN CERTIFICATE REQUEST-----\n[A-Za-z0-9+/=\n]+\n-----END CERTIFICATE REQUEST-----\n$/);
      const csr = await readCsr(csrPem);
      expect(csr.subject).to.equal(`CN=${name}`);
      const csrKey = Buffer.from(csr.publicKey.rawData);
      expect(csrKey.equals(createPublicKey(keyPem).export({ type: 'spki', format: 'der' }))).to.equal(true);
      const issued = await ca.issueForCsr(csrPem, { role: 'agent', name });
      expect(new X509Certificate(issued.certPem).checkPrivateKey(createPrivateKey(keyPem))).to.equal(true);
    }
    await expectReject(createKeyAndCsr('../etc'), /invalid name/);
  });

  describe('a real agent, just joined', () => {
    let etcd: EtcdServer;
    let cluster: TestCluster;
    let dir: string;
    before(async () => {
      await testPki();
      etcd = await EtcdServer.start('agent-footprint');
      cluster = new TestCluster(etcd, { name: 'agent-footprint', leaseTtlSec: 45 });
      await cluster.startCoordinator();
      dir = mkdtempSync(join(tmpdir(), 'agent-footprint-'));
    });
    after(async () => {
      await cluster?.destroy();
      await etcd?.destroy();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('has no x509 library, ASN.1 schemas, reflect-metadata, D-Bus client or systeminformation loaded, and has its facts', async () => {
      const out = join(dir, 'breakdown.json');
      const agent = await cluster.startAgent('fp-1', { nodeArgs: ['-r', MEMORY_PROBE], env: { AGENT_MEMORY_PROBE_OUT: out } });
      await agent.proc.waitForLog(/"msg":"connected to coordinator"/, 60_000);
      expect(agent.proc.logs, "this start joined with the token (and so made a key and a CSR)").to.match(/"msg":"joined the cluster"/);
      process.kill(agent.proc.pid, 'SIGUSR2');
      await waitFor('the agent\'s memory breakdown', () => existsSync(out), { timeoutMs: 30_000 });
      const b = JSON.parse(readFileSync(out, 'utf8')) as MemoryBreakdown;
      const loaded = Object.keys(b.packages);
      // The probe sees the agent's modules: the gRPC and etcd clients it does use are there.
      expect(loaded).to.include.members(['@grpc/grpc-js', 'etcd3']);
      const unwanted = loaded.filter((p) => p.startsWith('@peculiar/') || ['asn1js', 'reflect-metadata', 'tsyringe', 'dbus-next', 'systeminformation'].includes(p));
      expect(unwanted, `loaded: ${loaded.join(', ')}`).to.deep.equal([]);
      // ...yet it registered with real facts, collected by its child process.
      expect(agent.proc.logs).to.not.match(/facts collection failed/);
      const facts = JSON.parse((await etcd.client().get(new Keyspace().facts('fp-1')).string()) ?? '{}') as Partial<Facts>;
      expect(facts.memory?.totalBytes).to.be.greaterThan(0);
    });
  });
});
