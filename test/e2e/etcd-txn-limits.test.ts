/**
 * End to end against an etcd whose --max-txn-ops is below its default of 128 (here 16): a real
 * coordinator given the same value (--etcd-max-txn-ops 16), 40 real agents in one sim-fleet
 * process (bench/sim-fleet.ts), a bundle pushed, a group set and ONE commission job of all 40
 * nodes through clusterctl. Every claim, group commit and many-key read of the coordinator must
 * then fit in etcd's limit: the job ends Succeeded with 40 nodes succeeded, and no transaction
 * of the coordinator was refused. Without the flag the leader reads the 40 nodes' facts in one
 * transaction (and would claim them in one), which etcd refuses: the nodes never leave New.
 * And what an operator is told when etcd refuses a transaction for its size anyway.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { status } from '@grpc/grpc-js';
import { SimFleet } from '../../bench/sim-fleet';
import { EtcdLimitError, readKeys, runTxn, type TxnOp } from '../../coordinator/etcd-txn';
import { isTooLarge } from '../../coordinator/txn-batch';
import { Keyspace, toGrpcStatus } from '../../shared';
import { expectReject } from '../helpers';
import { expectExit, runContext } from '../helpers/cli-results';
import { e2eSuite } from './e2e-suite';

const AGENTS = 40;
const MAX_TXN_OPS = 16;

const BUNDLE = `name: txn-limits
version: "1"
units:
  - id: marker
    kind: file
    path: /etc/txn-limits.conf
    content: |
      node {{ facts.hostname }} commissioned under etcd --max-txn-ops ${MAX_TXN_OPS}
    mode: "0644"
`;

describe(`e2e: etcd with --max-txn-ops ${MAX_TXN_OPS}, coordinator with --etcd-max-txn-ops ${MAX_TXN_OPS}`, function () {
  this.timeout(120_000);
  const suite = e2eSuite('etcd-txn-limits', { extraArgs: ['--max-txn-ops', String(MAX_TXN_OPS)] });
  let fleet: SimFleet | undefined;
  let sandbox: string | undefined;

  afterEach(async function () {
    this.timeout(30_000);
    await fleet?.stop(5_000).catch(() => undefined);
    fleet = undefined;
    if (sandbox) rmSync(sandbox, { recursive: true, force: true });
    sandbox = undefined;
  });

  it(`one commission job of ${AGENTS} nodes ends Succeeded, with no etcd transaction of the coordinator refused`, async () => {
    const cluster = suite.cluster({ name: 'etcd-txn-limits' });
    const coord = await cluster.startCoordinator({ extraArgs: ['--etcd-max-txn-ops', String(MAX_TXN_OPS)] });
    sandbox = mkdtempSync(join(tmpdir(), 'etcd-txn-limits-fleet-'));
    fleet = new SimFleet({
      etcd: suite.etcd.endpoint, clusterSecretFile: join(cluster.pkiDir, 'cluster-secret'), agents: AGENTS, leaseTtlSec: cluster.leaseTtlSec,
      sandbox, logFile: join(cluster.logDir, 'sim-fleet.log'),
    });
    await fleet.registered(30_000);
    await fleet.attached(undefined, 30_000);
    await cluster.waitForNodes(`${AGENTS} nodes Discovered`, (ns) => ns.length === AGENTS && ns.every((n) => n.state === 'Discovered'), 30_000);

    const bundleFile = join(cluster.baseDir, 'txn-limits.yaml');
    writeFileSync(bundleFile, BUNDLE);
    expectExit(await cluster.ctl(['bundle', 'push', '-f', bundleFile]), 0);
    expectExit(await cluster.ctl(['group', 'set', 'fleet', '--bundle', 'txn-limits@1']), 0);
    const com = await cluster.ctl(['node', 'commission', ...fleet.nodeIds, '-g', 'fleet', '--wait'], 60_000);
    expectExit(com, 0);

    const jobs = JSON.parse(expectExit(await cluster.ctl(['jobs', '-o', 'json']), 0).stdout) as { id: string; kind: string; state: string }[];
    expect(jobs.map((j) => [j.kind, j.state]), runContext(com)).to.deep.equal([['commission', 'Succeeded']]);
    const last = JSON.parse(expectExit(await cluster.ctl(['job', 'get', 'last', '-j']), 0).stdout) as { job: { id: string }; nodes: { nodeId: string; state: string }[] };
    expect(last.job.id).to.equal(jobs[0].id);
    expect(last.nodes.filter((n) => n.state === 'succeeded').map((n) => n.nodeId).sort()).to.deep.equal([...fleet.nodeIds].sort());
    expect((await cluster.nodes()).filter((n) => n.state === 'Commissioned')).to.have.length(AGENTS);

    // Not one transaction refused and split: the coordinator kept within etcd's limit.
    const metrics = await (await fetch(`http://${await coord.metricsAddress()}/metrics`)).text();
    expect(metrics.split('\n').filter((l) => l.startsWith('cluster_etcd_txn_errors_total '))).to.deep.equal(['cluster_etcd_txn_errors_total 0']);
    expect(coord.proc.logs).to.not.match(/too many operations|--max-txn-ops/);
  });

  it('a transaction over etcd\'s limit is refused with a message that names --etcd-max-txn-ops (and the group committers split on it)', async () => {
    const client = suite.etcd.client();
    const ks = new Keyspace('/txn-limits/');
    const keys = Array.from({ length: MAX_TXN_OPS + 1 }, (_, i) => ks.node(`n${i}`));
    const puts = (n: number): TxnOp[] => keys.slice(0, n).map((key) => ({ kind: 'put', key, value: '{}' }));
    expect((await runTxn(client, [], puts(MAX_TXN_OPS))).succeeded).to.equal(true);
    const refusal = `etcd refused a transaction of ${MAX_TXN_OPS + 1} operations (over its --max-txn-ops): start the coordinator with --etcd-max-txn-ops equal to etcd's --max-txn-ops; if it already is, this request cannot be split: make it smaller`;
    const write = await expectReject(runTxn(client, [], puts(MAX_TXN_OPS + 1)));
    expect(write).to.be.instanceOf(EtcdLimitError);
    expect(write.message).to.equal(refusal);
    expect(isTooLarge(write)).to.equal(true);
    // What clusterctl is answered when nothing could split it.
    expect(toGrpcStatus(write)).to.deep.include({ code: status.FAILED_PRECONDITION, details: refusal });
    const read = await expectReject(readKeys(client, keys));
    expect(read.message).to.equal(refusal);
  });
});
