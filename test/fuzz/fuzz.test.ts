/**
 * The fuzz run of the suite (test/fuzz/fuzz.ts says what each generated request is checked
 * for): a fixed seed, 1,500 generated requests across every method of the contract and 300
 * generated bundles, against one real coordinator process and etcd. The long run (100,000
 * requests, 10,000 bundles) is `node dist/test/fuzz/fuzz-run.js` (fuzz-run.ts).
 */
import { expect } from 'chai';
import { e2eSuite } from '../e2e/e2e-suite';
import { runFuzz } from './fuzz';

describe('fuzz: generated requests and bundles against a real coordinator', function () {
  this.timeout(600_000);
  const suite = e2eSuite('fuzz');

  it('seed 1: 1,500 requests over every RPC and 300 bundles, each answered with a status (never INTERNAL), refused ones change nothing, the coordinator lives', async () => {
    const cluster = await suite.startCluster({ name: 'fuzz' });
    const c = cluster.coordinators[0];
    const report = await runFuzz({
      address: c.address, credentialsFile: cluster.adminCredentials, etcd: suite.etcd.client(), alive: () => c.proc.alive,
      seed: 1, requests: 1500, bundles: 300,
    });
    expect(report.failures, JSON.stringify(report, null, 2)).to.deep.equal([]);
    expect(report.requests).to.equal(1500);
    expect(report.bundles).to.equal(300);
    expect(report.codes.INVALID_ARGUMENT ?? 0).to.be.above(0);
    // Bundles with secrets were sent, and some were valid and stored (the secret paths ran).
    expect(report.secretBundles.accepted, JSON.stringify(report.secretBundles)).to.be.above(0);
    expect(report.secretBundles.sent).to.be.above(report.secretBundles.accepted);
    expect(c.proc.alive).to.equal(true);
  });
});
