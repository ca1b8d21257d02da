#!/usr/bin/env node
/**
 * cluster-coordinator: the composition root. Reads the options, builds the etcd client and
 * logger (nothing else constructs clients), starts one Coordinator and its Prometheus endpoint
 * (--metrics-listen, after the gRPC port: scrapes read etcd), and on SIGTERM/SIGINT
 * stops it gracefully: resign leadership, close agent streams, let open calls finish within
 * the grace time, and exit anyway after the force time.
 */
import { createEtcdClient, createLogger, errorMessage, formatHelp, Keyspace, parseOptions, VERSION, type EtcdTls, type OptionSpecs } from '../shared';
import { DEFAULT_PKI_DIR } from '../shared/pki/credentials-file';
import { Coordinator } from './coordinator';
import { etcdTxnLimits, parseCoordinatorArgs } from './options';
import { armCpuProfile } from './cpu-profile';
import { startMetricsServer } from '../shared/metrics-server';
import { initPkiDir, readEtcdTls } from './pki/pki-dir';
import { isParseWorker, serveParseRequests, startParseWorker, stopParseWorker } from '../shared/parse-worker';
import { isLeaseKeeperWorker, serveLeaseKeeper } from './lease-keeper';
import { workerData } from 'node:worker_threads';

const INIT_OPTIONS = {
  pkiDir: { kind: 'string', env: 'CLUSTER_PKI_DIR', default: DEFAULT_PKI_DIR, placeholder: 'DIR', description: 'the pki dir every coordinator replica is given (--pki-dir)' },
  clusterSecretFile: { kind: 'string', env: 'CLUSTER_SECRET_FILE', placeholder: 'FILE', description: 'the cluster secret [default: <pki-dir>/cluster-secret]' },
  etcdHost: { kind: 'list', placeholder: 'NAME[,NAME...]', description: 'DNS names or addresses etcd is reached at, besides localhost and 127.0.0.1 (its certificate names them)' },
} as const satisfies OptionSpecs;

/** `cluster-coordinator init`: the pki dir etcd needs before its first start (coordinator/pki/pki-dir.ts). */
async function init(argv: readonly string[]): Promise<number> {
  let values;
  try {
    values = parseOptions(INIT_OPTIONS, { argv, env: process.env, allowPositionals: false });
  } catch (err) {
    process.stderr.write(`cluster-coordinator init: ${errorMessage(err)}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(formatHelp('Usage: cluster-coordinator init [--pki-dir DIR] [--etcd-host NAME...]', INIT_OPTIONS,
      'Makes (when missing) the cluster secret, the cluster CA (ca.crt, ca-key.json), etcd\'s serving certificate and\nthe etcd client certificates of the coordinators (CN=coordinator) and of etcd\'s root user.'));
    return 0;
  }
  const v = values.values;
  const wrote = await initPkiDir({ dir: v.pkiDir, ...(v.clusterSecretFile ? { clusterSecretFile: v.clusterSecretFile } : {}), etcdHosts: v.etcdHost });
  for (const path of wrote) process.stdout.write(`wrote ${path}\n`);
  if (wrote.length === 0) process.stdout.write(`${v.pkiDir} is complete; nothing written\n`);
  return 0;
}

async function main(): Promise<number> {
  if (process.argv[2] === 'init') return init(process.argv.slice(3));
  let parsed;
  try {
    parsed = parseCoordinatorArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`cluster-coordinator: ${errorMessage(err)}\n`);
    return 2;
  }
  if (parsed.kind === 'help') {
    process.stdout.write(parsed.text);
    return 0;
  }
  if (parsed.kind === 'version') {
    process.stdout.write(`cluster-coordinator ${VERSION}\n`);
    return 0;
  }
  const config = parsed.config;
  const logger = createLogger({ level: config.logLevel, fields: { service: 'cluster-coordinator' } });
  if (config.cpuProfile) armCpuProfile(config.cpuProfile, logger);
  let keyspace: Keyspace;
  let etcd;
  let electionEtcd;
  let tls: EtcdTls;
  try {
    keyspace = new Keyspace(config.prefix);
    tls = await readEtcdTls(config.etcdTls);
    etcd = createEtcdClient({ endpoints: config.etcd, tls });
    // Its own connection: election keepalives must not wait behind bulk writes (coordinator.ts).
    electionEtcd = createEtcdClient({ endpoints: config.etcd, dedicatedConnection: true, tls });
  } catch (err) {
    process.stderr.write(`cluster-coordinator: ${errorMessage(err)}\n`);
    return 2;
  }
  // Bundles and cluster files are parsed in a worker thread running this file (the end of it).
  startParseWorker(__filename);
  const coordinator = new Coordinator({
    etcd, electionEtcd, electionWorkerFile: __filename, keyspace, etcdEndpoints: config.etcd, etcdTls: tls, logger, replicaId: config.replicaId, listen: config.listen, advertise: config.advertise,
    electionTtlMs: config.electionTtlMs, eventRetention: config.eventRetention, pingIntervalMs: config.pingIntervalMs, streamGraceMs: config.streamGraceMs, reattachGraceMs: config.reattachGraceMs,
    grpcKeepaliveTimeMs: config.grpcKeepaliveTimeMs, grpcKeepaliveTimeoutMs: config.grpcKeepaliveTimeoutMs, tcpLivenessMs: config.tcpLivenessMs,
    jobRetention: config.jobRetention, jobRetentionAgeMs: config.jobRetentionAgeMs, historyRetention: config.historyRetention, historyRetentionAgeMs: config.historyRetentionAgeMs, etcdQuotaBytes: config.etcdQuotaBytes,
    // etcd's --max-txn-ops and --max-request-bytes, as given: every transaction stays within them.
    ...etcdTxnLimits(config.etcdMaxTxnOps, config.etcdMaxRequestBytes),
    resyncIntervalMs: config.resyncIntervalMs, pki: { dir: config.pkiDir, clusterSecretFile: config.clusterSecretFile, agentCertValidityMs: config.agentCertValidityMs, etcdRbac: tls !== undefined },
  });
  try {
    await coordinator.start();
  } catch (err) {
    logger.error('cannot start', { err: errorMessage(err) });
    etcd.close();
    electionEtcd.close();
    return 1;
  }
  const metricsServer = await startMetricsServer(config.metricsListen, { logger, render: () => coordinator.metrics.render() });

  return new Promise<number>((resolve) => {
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals): void => {
      if (++signals > 1) {
        logger.warn('second signal; exiting now', { signal });
        resolve(1);
        return;
      }
      logger.info('stopping', { signal, graceMs: config.shutdownGraceMs, forceMs: config.shutdownForceMs });
      const force = setTimeout(() => {
        logger.error('shutdown took longer than the force time; exiting', { forceMs: config.shutdownForceMs });
        resolve(1);
      }, config.shutdownForceMs);
      force.unref();
      coordinator.stop({ graceMs: config.shutdownGraceMs }).then(
        async () => { await metricsServer?.close(); await stopParseWorker(); clearTimeout(force); etcd.close(); electionEtcd.close(); resolve(0); },
        (err: unknown) => { logger.error('shutdown failed', { err: errorMessage(err) }); resolve(1); },
      );
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}

if (isParseWorker(workerData)) {
  serveParseRequests();
} else if (isLeaseKeeperWorker(workerData)) {
  serveLeaseKeeper();
} else {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`cluster-coordinator: ${errorMessage(err)}\n`);
      process.exit(1);
    },
  );
}
