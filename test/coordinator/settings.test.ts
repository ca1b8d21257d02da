/**
 * coordinator/options.ts `compileSettings`: the one options object of a replica. Defaults
 * filled in, derived values follow what they derive from, overrides win, undefined is "not
 * given", and a value that cannot work is refused with its name.
 */
import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { COORDINATOR_OPTIONS, compileSettings, DEFAULT_SETTINGS, etcdTxnLimits, parseCoordinatorArgs, type CoordinatorSettings } from '../../coordinator/options';

describe('coordinator settings', () => {
  // The parser checks only that the etcd client TLS files exist.
  let tlsDir: string;
  let tlsFlags: string[];
  before(() => {
    tlsDir = mkdtempSync(join(tmpdir(), 'settings-tls-'));
    for (const f of ['ca.crt', 'etcd-coordinator.crt', 'etcd-coordinator.key']) writeFileSync(join(tlsDir, f), '');
    tlsFlags = ['--etcd-ca', join(tlsDir, 'ca.crt'), '--etcd-cert', join(tlsDir, 'etcd-coordinator.crt'), '--etcd-key', join(tlsDir, 'etcd-coordinator.key')];
  });
  after(() => rmSync(tlsDir, { recursive: true, force: true }));

  it('fills every default, and derives the keepalive and hello timeout from TTL and ping', () => {
    const s = compileSettings();
    expect(s).to.deep.include(DEFAULT_SETTINGS);
    expect(s.electionKeepaliveIntervalMs).to.equal(666);
    expect(s.helloTimeoutMs).to.equal(30_000);
  });

  // [given, field, expected]
  const rows: [Partial<CoordinatorSettings>, keyof CoordinatorSettings, number][] = [
    [{ pingIntervalMs: 1000 }, 'helloTimeoutMs', 3000],
    [{ pingIntervalMs: 1000, helloTimeoutMs: 500 }, 'helloTimeoutMs', 500],
    [{ electionTtlMs: 3000 }, 'electionKeepaliveIntervalMs', 1000],
    [{ electionTtlMs: 300 }, 'electionKeepaliveIntervalMs', 200],
    [{ electionTtlMs: 3000, electionKeepaliveIntervalMs: 250 }, 'electionKeepaliveIntervalMs', 250],
    [{ eventRetention: 50 }, 'eventRetention', 50],
    [{ eventRetention: undefined }, 'eventRetention', 10_000],
    [{ nodeCasAttempts: 1 }, 'nodeCasAttempts', 1],
    // 0 turns the kernel's liveness check off (--tcp-liveness 0): a coordinator must start with it.
    [{ tcpLivenessMs: 0 }, 'tcpLivenessMs', 0],
    [{}, 'tcpLivenessMs', 3000],
  ];
  for (const [given, field, want] of rows) {
    it(`${JSON.stringify(given)} → ${field} ${want}`, () => {
      expect(compileSettings(given)[field]).to.equal(want);
    });
  }

  for (const bad of [{ pingIntervalMs: 0 }, { nodeCasAttempts: -1 }, { eventRetention: 1.5 }, { etcdProbeTimeoutMs: Number.NaN }]) {
    it(`refuses ${JSON.stringify(bad)} naming the field`, () => {
      const field = Object.keys(bad)[0];
      expect(() => compileSettings(bad)).to.throw(new RegExp(`setting ${field} must be a positive integer`));
    });
  }
  it('refuses {"tcpLivenessMs":-1} naming the field and that 0 means off', () => {
    expect(() => compileSettings({ tcpLivenessMs: -1 })).to.throw(/setting tcpLivenessMs must be a whole number \(0 = off\), not -1/);
  });

  it('the command line defaults are the settings defaults', () => {
    const parsed = parseCoordinatorArgs(['--etcd', '127.0.0.1:2379', ...tlsFlags], {});
    if (parsed.kind !== 'run') throw new Error(`expected run, got ${parsed.kind}`);
    const c = parsed.config;
    expect([c.electionTtlMs, c.pingIntervalMs, c.streamGraceMs, c.reattachGraceMs, c.resyncIntervalMs, c.eventRetention, c.shutdownGraceMs]).to.deep.equal([
      DEFAULT_SETTINGS.electionTtlMs, DEFAULT_SETTINGS.pingIntervalMs, DEFAULT_SETTINGS.streamGraceMs, DEFAULT_SETTINGS.reattachGraceMs,
      DEFAULT_SETTINGS.resyncIntervalMs, DEFAULT_SETTINGS.eventRetention, DEFAULT_SETTINGS.shutdownGraceMs,
    ]);
    expect(COORDINATOR_OPTIONS.electionTtl.default).to.equal(2);
  });

  it('--grpc-keepalive / --grpc-keepalive-timeout: default 30 s / 10 s (the settings defaults); flags and environment set them', () => {
    const run = (argv: string[], env: NodeJS.ProcessEnv = {}): [number, number] => {
      const parsed = parseCoordinatorArgs(['--etcd', '127.0.0.1:2379', ...tlsFlags, ...argv], env);
      if (parsed.kind !== 'run') throw new Error(`expected run, got ${parsed.kind}`);
      return [parsed.config.grpcKeepaliveTimeMs, parsed.config.grpcKeepaliveTimeoutMs];
    };
    expect(run([])).to.deep.equal([DEFAULT_SETTINGS.grpcKeepaliveTimeMs, DEFAULT_SETTINGS.grpcKeepaliveTimeoutMs]);
    expect(run([])).to.deep.equal([30_000, 10_000]);
    expect(run(['--grpc-keepalive', '5', '--grpc-keepalive-timeout', '3.5'])).to.deep.equal([5000, 3500]);
    expect(run([], { CLUSTER_GRPC_KEEPALIVE: '2', CLUSTER_GRPC_KEEPALIVE_TIMEOUT: '2' })).to.deep.equal([2000, 2000]);
    expect(() => run(['--grpc-keepalive', '0'])).to.throw(/grpc-keepalive/);
  });

  it('--tcp-liveness: default 3 s; 0 turns it off; whole seconds from 2 to 3600, anything else refused saying what to use', () => {
    const run = (argv: string[], env: NodeJS.ProcessEnv = {}): number => {
      const parsed = parseCoordinatorArgs(['--etcd', '127.0.0.1:2379', ...tlsFlags, ...argv], env);
      if (parsed.kind !== 'run') throw new Error(`expected run, got ${parsed.kind}`);
      return parsed.config.tcpLivenessMs;
    };
    expect(run([])).to.equal(DEFAULT_SETTINGS.tcpLivenessMs).and.equal(3000);
    expect(run(['--tcp-liveness', '0'])).to.equal(0);
    expect(run(['--tcp-liveness', '5'])).to.equal(5000);
    expect(run([], { CLUSTER_TCP_LIVENESS: '10' })).to.equal(10_000);
    for (const bad of ['1', '2.5', '7200']) {
      expect(() => run(['--tcp-liveness', bad]), bad).to.throw(/--tcp-liveness .*use 0 \(off\) or whole seconds from 2 to 3600/);
    }
  });

  it('--etcd-max-txn-ops / --etcd-max-request-bytes: etcd\'s defaults (128, 1.5 MiB); flags and environment set them; below the minimum refused with the reason', () => {
    const run = (argv: string[], env: NodeJS.ProcessEnv = {}): [number, number] => {
      const parsed = parseCoordinatorArgs(['--etcd', '127.0.0.1:2379', ...tlsFlags, ...argv], env);
      if (parsed.kind !== 'run') throw new Error(`expected run, got ${parsed.kind}`);
      return [parsed.config.etcdMaxTxnOps, parsed.config.etcdMaxRequestBytes];
    };
    expect(run([])).to.deep.equal([128, 1_572_864]);
    expect(run(['--etcd-max-txn-ops', '16', '--etcd-max-request-bytes', '3145728'])).to.deep.equal([16, 3_145_728]);
    expect(run([], { CLUSTER_ETCD_MAX_TXN_OPS: '64', CLUSTER_ETCD_MAX_REQUEST_BYTES: '2097152' })).to.deep.equal([64, 2_097_152]);
    expect(run(['--etcd-max-txn-ops', '32'], { CLUSTER_ETCD_MAX_TXN_OPS: '64' })).to.deep.equal([32, 1_572_864]);
    expect(run(['--etcd-max-txn-ops', '8'])).to.deep.equal([8, 1_572_864]);
    expect(() => run(['--etcd-max-txn-ops', '7'])).to.throw(/^--etcd-max-txn-ops 7: must be at least 8; .*run etcd with --max-txn-ops 8 or more \(its default is 128\)$/);
    expect(() => run([], { CLUSTER_ETCD_MAX_TXN_OPS: '0' })).to.throw(/CLUSTER_ETCD_MAX_TXN_OPS: must be at least 1/);
    expect(() => run(['--etcd-max-txn-ops', 'many'])).to.throw(/--etcd-max-txn-ops: "many" is not a whole number/);
    expect(() => run(['--etcd-max-request-bytes', '65536'])).to.throw(/^--etcd-max-request-bytes 65536: must be at least 1048576 \(1 MiB\); .*run etcd with --max-request-bytes 1048576 or more \(its default is 1572864\)$/);
  });

  // [etcd's --max-txn-ops, --max-request-bytes] → the transaction settings derived from them
  const limitRows: [number, number, Pick<CoordinatorSettings, 'txnMaxOps' | 'txnMaxBytes' | 'applyTxnMaxOps' | 'applyTxnMaxBytes'>][] = [
    [128, 1_572_864, { txnMaxOps: 128, txnMaxBytes: 1_048_576, applyTxnMaxOps: 100, applyTxnMaxBytes: 1_048_576 }],
    [16, 1_572_864, { txnMaxOps: 16, txnMaxBytes: 1_048_576, applyTxnMaxOps: 12, applyTxnMaxBytes: 1_048_576 }],
    [8, 1_048_576, { txnMaxOps: 8, txnMaxBytes: 699_050, applyTxnMaxOps: 6, applyTxnMaxBytes: 699_050 }],
    [9, 1_572_864, { txnMaxOps: 9, txnMaxBytes: 1_048_576, applyTxnMaxOps: 7, applyTxnMaxBytes: 1_048_576 }],
    [1024, 10 * 1024 * 1024, { txnMaxOps: 1024, txnMaxBytes: 6_990_506, applyTxnMaxOps: 800, applyTxnMaxBytes: 6_990_506 }],
  ];
  for (const [ops, bytes, want] of limitRows) {
    it(`etcd --max-txn-ops ${ops} --max-request-bytes ${bytes} → ${JSON.stringify(want)}`, () => {
      const got = etcdTxnLimits(ops, bytes);
      expect(got).to.deep.equal(want);
      // An apply's commit adds its event and the event counter (event-log.ts): they must fit.
      expect(got.applyTxnMaxOps + 2).to.be.at.most(ops);
      expect(compileSettings(got)).to.deep.include(want);
    });
  }

  it('at etcd\'s defaults the derived settings are DEFAULT_SETTINGS\' (128, 1 MiB, 100, 1 MiB) and the flags\' defaults are etcd\'s', () => {
    expect(etcdTxnLimits(COORDINATOR_OPTIONS.etcdMaxTxnOps.default, COORDINATOR_OPTIONS.etcdMaxRequestBytes.default)).to.deep.equal({
      txnMaxOps: DEFAULT_SETTINGS.txnMaxOps, txnMaxBytes: DEFAULT_SETTINGS.txnMaxBytes, applyTxnMaxOps: DEFAULT_SETTINGS.applyTxnMaxOps, applyTxnMaxBytes: DEFAULT_SETTINGS.applyTxnMaxBytes,
    });
    expect([DEFAULT_SETTINGS.txnMaxOps, DEFAULT_SETTINGS.txnMaxBytes, DEFAULT_SETTINGS.applyTxnMaxOps, DEFAULT_SETTINGS.applyTxnMaxBytes]).to.deep.equal([128, 1_048_576, 100, 1_048_576]);
  });

  it('pki: --pki-dir defaults to /etc/cluster/pki, the cluster secret to <pki-dir>/cluster-secret; flags and environment override', () => {
    const run = (argv: string[], env: NodeJS.ProcessEnv = {}): { pkiDir: string; clusterSecretFile: string } => {
      const parsed = parseCoordinatorArgs(['--etcd', '127.0.0.1:2379', ...tlsFlags, ...argv], env);
      if (parsed.kind !== 'run') throw new Error(`expected run, got ${parsed.kind}`);
      return { pkiDir: parsed.config.pkiDir, clusterSecretFile: parsed.config.clusterSecretFile };
    };
    expect(run([])).to.deep.equal({ pkiDir: '/etc/cluster/pki', clusterSecretFile: '/etc/cluster/pki/cluster-secret' });
    expect(run(['--pki-dir', '/srv/pki'])).to.deep.equal({ pkiDir: '/srv/pki', clusterSecretFile: '/srv/pki/cluster-secret' });
    expect(run([], { CLUSTER_PKI_DIR: '/e/pki', CLUSTER_SECRET_FILE: '/e/secret' })).to.deep.equal({ pkiDir: '/e/pki', clusterSecretFile: '/e/secret' });
  });

  it('etcd only over TLS: without the client certificate files the coordinator refuses to start and says how to make them', () => {
    expect(() => parseCoordinatorArgs(['--etcd', '127.0.0.1:2379', '--pki-dir', join(tlsDir, 'none')], {}))
      .to.throw(/--etcd-ca .*none\/ca\.crt: no such file; the coordinator reaches etcd only over TLS with a client certificate: run `cluster-coordinator init --pki-dir .*none`/);
    const parsed = parseCoordinatorArgs(['--etcd', '127.0.0.1:2379', '--pki-dir', tlsDir], {});
    if (parsed.kind !== 'run') throw new Error(`expected run, got ${parsed.kind}`);
    expect(parsed.config.etcdTls).to.deep.equal({ caFile: join(tlsDir, 'ca.crt'), certFile: join(tlsDir, 'etcd-coordinator.crt'), keyFile: join(tlsDir, 'etcd-coordinator.key') });
  });
});
