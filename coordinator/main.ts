#!/usr/bin/env node
/**
 * cluster-coordinator: the composition root. Reads the options, builds the etcd client and
 * logger (nothing else constructs clients), starts one Coordinator, and on SIGTERM/SIGINT
 * stops it gracefully: resign leadership, close agent streams, let open calls finish within
 * the grace time, and exit anyway after the force time.
 */
import { createEtcdClient, createLogger, errorMessage, Keyspace, VERSION } from '../shared';
import { Coordinator } from './coordinator';
import { parseCoordinatorArgs } from './options';

async function main(): Promise<number> {
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
  let keyspace: Keyspace;
  let etcd;
  let electionEtcd;
  try {
    keyspace = new Keyspace(config.prefix);
    etcd = createEtcdClient({ endpoints: config.etcd });
    // Its own connection: election keepalives must not wait behind bulk writes (coordinator.ts).
    electionEtcd = createEtcdClient({ endpoints: config.etcd, dedicatedConnection: true });
  } catch (err) {
    process.stderr.write(`cluster-coordinator: ${errorMessage(err)}\n`);
    return 2;
  }
  const coordinator = new Coordinator({
    etcd, electionEtcd, keyspace, etcdEndpoints: config.etcd, logger, replicaId: config.replicaId, listen: config.listen, advertise: config.advertise,
    electionTtlMs: config.electionTtlMs, eventRetention: config.eventRetention, pingIntervalMs: config.pingIntervalMs, streamGraceMs: config.streamGraceMs, reattachGraceMs: config.reattachGraceMs,
    resyncIntervalMs: config.resyncIntervalMs, pki: { dir: config.pkiDir, clusterSecretFile: config.clusterSecretFile, agentCertValidityMs: config.agentCertValidityMs },
  });
  try {
    await coordinator.start();
  } catch (err) {
    logger.error('cannot start', { err: errorMessage(err) });
    etcd.close();
    electionEtcd.close();
    return 1;
  }

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
        () => { clearTimeout(force); etcd.close(); electionEtcd.close(); resolve(0); },
        (err: unknown) => { logger.error('shutdown failed', { err: errorMessage(err) }); resolve(1); },
      );
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`cluster-coordinator: ${errorMessage(err)}\n`);
    process.exit(1);
  },
);
