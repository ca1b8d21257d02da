#!/usr/bin/env node
/**
 * cluster-agent: the composition root (STYLE.md). Reads the options, builds the etcd client
 * and the logger, wires one Agent, and turns SIGTERM/SIGINT into a graceful stop with a grace
 * time, after which it exits anyway (systemd would SIGKILL it later otherwise).
 *
 * The applied record in --state-dir is the same file `cluster-agent apply` writes
 * (agent/applied-record.ts); at start the daemon re-verifies it ("reload") with the same unit
 * context its commands use, and reports drift to the coordinator.
 *
 * Trust: before anything talks to the coordinator the agent has its certificate
 * (agent/node-certificate.ts): the one in <state-dir>/pki/, or one obtained by joining with
 * --join-token/--join-token-file through --join-address (etcd admits only agents with a
 * certificate: its CN is the agent's etcd user). Without either it exits 1 saying how to join; a refused
 * join (bad, expired, used-up or revoked token; a coordinator without the pinned CA) exits 1
 * with the cluster's reason. The certificate is renewed while the daemon runs.
 *
 * `cluster-agent apply|verify|remove|plan ...` are local config-unit commands, served by
 * agent/local-cli.ts (loaded only for them, so the daemon does not pay for it).
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { Agent } from './agent';
import { reverifyStore } from './applied-reload';
import { appliedState, FileAppliedStore } from './applied-store';
import { CommandExecutor } from './command-executor';
import { createUnitContext } from './unit-context';
import { createHandlerRegistry } from './units/handlers';
import { resolveIdentity, systemIdentityEnvironment } from './identity';
import { EtcdLeaderSource, StaticLeaderSource, type LeaderSource } from './leader-discovery';
import { membershipTimings } from './lease-membership';
import { NodeCertificate, NodeCertificateFiles, NOT_JOINED_HINT, NotJoinedError } from './node-certificate';
import { agentHelp, compileAgentConfig, parseAgentOptions } from './options';
import { RenewingEtcd } from './renewing-etcd';
import { createEtcdClient, endpointsToHosts } from '../shared/etcd';
import { ClusterError, errorMessage } from '../shared/errors';
import { Keyspace } from '../shared/keyspace';
import { createLogger } from '../shared/logger';
import { VERSION } from '../shared/version';
import { renderRegistry, startMetricsServer } from '../shared/metrics-server';
import { AgentMetrics } from './metrics';

const LOCAL_SUBCOMMANDS = new Set(['apply', 'verify', 'remove', 'plan']);

/** Exit codes: 0 ok, 1 runtime failure, 2 bad usage. */
function usageError(message: string): number {
  process.stderr.write(`cluster-agent: ${message}\n`);
  return 2;
}

async function main(argv: string[]): Promise<number> {
  if (argv.length > 0 && LOCAL_SUBCOMMANDS.has(argv[0])) {
    const localCli: { runLocalCli(args: string[]): Promise<number> } = await import('./local-cli');
    return localCli.runLocalCli(argv);
  }
  if (argv.includes('--version')) {
    process.stdout.write(`cluster-agent ${VERSION}\n`);
    return 0;
  }

  let parsed: ReturnType<typeof parseAgentOptions>;
  try {
    parsed = parseAgentOptions(argv);
  } catch (err) {
    return usageError(errorMessage(err));
  }
  if (parsed.help) {
    process.stdout.write(agentHelp());
    return 0;
  }
  let o: ReturnType<typeof compileAgentConfig>;
  try {
    o = compileAgentConfig(parsed.values);
  } catch (err) {
    return usageError(errorMessage(err));
  }
  const logger = createLogger({ level: o.logLevel, fields: { component: 'agent' } });

  if (o.joinToken !== undefined && o.joinTokenFile !== undefined) return usageError('give the join token once: --join-token or --join-token-file, not both');

  const stopController = new AbortController();
  const stopped = new Promise<NodeJS.Signals>((resolve) => {
    const on = (sig: NodeJS.Signals): void => { stopController.abort(); resolve(sig); };
    process.once('SIGTERM', () => on('SIGTERM'));
    process.once('SIGINT', () => on('SIGINT'));
  });

  let agent: Agent;
  let nodeId: string;
  let joinSource: StaticLeaderSource | undefined;
  // Not read yet: bad input must change nothing, and reading may convert an old-format record.
  const applied = new FileAppliedStore(o.stateDir, logger);
  const handlers = createHandlerRegistry();
  try {
    nodeId = resolveIdentity(o, systemIdentityEnvironment).nodeId;
  } catch (err) {
    // A bad node id: the operator's input.
    return usageError(errorMessage(err));
  }
  // `agent` is assigned below, before anything can scrape.
  const metrics = new AgentMetrics({ nodeId, connected: () => agent.connected });
  const unitContext = createUnitContext({
    observer: metrics,
    root: o.root, logger, systemdBus: o.systemdBus, systemdUnitDir: o.systemdUnitDir, packageBackend: o.packageBackend,
    systemdCallTimeoutMs: o.work.systemdCallTimeoutMs, systemdJobTimeoutMs: o.work.systemdJobTimeoutMs,
    packageCommandTimeoutMs: o.work.packageCommandTimeoutMs,
  });
  try {
    endpointsToHosts(o.etcd, true);
    const joinAddress = o.joinAddress ?? o.coordinator;
    joinSource = joinAddress !== undefined ? new StaticLeaderSource(joinAddress) : undefined;
  } catch (err) {
    // A bad --etcd, --join-address or --coordinator address: the operator's input.
    unitContext.close();
    return usageError(errorMessage(err));
  }

  // After validation, so bad input changes nothing on disk.
  try {
    // 0700: the applied record may name secrets' paths and digests; pki/ holds the node's key.
    mkdirSync(o.stateDir, { recursive: true, mode: 0o700 });
  } catch (err) {
    process.stderr.write(`cluster-agent: cannot create --state-dir ${o.stateDir}: ${errorMessage(err)}\n`);
    return 1;
  }

  // The certificate first: etcd admits only clients with a certificate of the cluster CA (its
  // CN is this agent's etcd user), so an agent that has not joined joins through --join-address
  // before it can read anything there, and nothing is written to etcd by an agent that cannot join.
  const file = o.joinTokenFile;
  const joinToken = file !== undefined ? (): string => readFileSync(file, 'utf8').trim() : o.joinToken !== undefined ? (): string => o.joinToken as string : undefined;
  let certificate: NodeCertificate;
  let etcd: RenewingEtcd | undefined;
  let leaders: LeaderSource | undefined;
  try {
    const files = new NodeCertificateFiles(o.stateDir);
    const stored = await files.read(nodeId, new Date());
    if (!('identity' in stored)) {
      if (joinToken === undefined) throw new NotJoinedError(`${NOT_JOINED_HINT} (${stored.problem})`);
      if (joinSource === undefined) throw new NotJoinedError(`to join, give --join-address HOST:PORT (a coordinator): etcd admits only agents that hold a certificate (${stored.problem})`);
      await NodeCertificate.open({ stateDir: o.stateDir, nodeId, joinToken, leaders: joinSource, logger: logger.child({ nodeId }) }, stopController.signal);
    }
    const identity = await files.read(nodeId, new Date());
    if (!('identity' in identity)) throw new NotJoinedError(identity.problem);
    // A renewed certificate replaces the etcd client too (agent/renewing-etcd.ts): etcd3's client
    // cannot change its credentials, and after the old certificate expires no new connection opens.
    etcd = new RenewingEtcd(createEtcdClient({ endpoints: o.etcd, tls: identity.identity }), { closeAfterMs: membershipTimings(o.leaseTtlMs).callTimeoutMs });
    const source = o.coordinator
      ? new StaticLeaderSource(o.coordinator)
      : new EtcdLeaderSource({ etcd: etcd.client, keyspace: new Keyspace(o.prefix), logger: logger.child({ nodeId }), callTimeoutMs: membershipTimings(o.leaseTtlMs).callTimeoutMs });
    leaders = source;
    if (source instanceof EtcdLeaderSource) {
      await source.start();
      etcd.onReplaced(() => source.rewatch());
    }
    // Loads the stored identity; renewals follow the elected leader.
    certificate = await NodeCertificate.open({ stateDir: o.stateDir, nodeId, joinToken, leaders, logger: logger.child({ nodeId }) }, stopController.signal);
    const renewing = etcd;
    certificate.subscribe((renewed) => {
      renewing.replace(createEtcdClient({ endpoints: o.etcd, tls: renewed })).then(
        () => logger.info('etcd client replaced with the renewed certificate', { nodeId }),
        (err: unknown) => logger.warn('could not replace the etcd client after renewal', { nodeId, error: errorMessage(err) }),
      );
    });
  } catch (err) {
    await leaders?.close();
    etcd?.close();
    unitContext.close();
    if (stopController.signal.aborted) return 0;
    logger.error('cannot start without a certificate', { error: errorMessage(err) });
    process.stderr.write(`cluster-agent: ${errorMessage(err)}\n`);
    return 1;
  }
  const etcdClient = etcd;
  const etcdCalls = etcd.client;
  const leaderSource = leaders;

  try {
    agent = new Agent(
      o,
      {
        etcd: etcdCalls, logger, credentials: certificate, leaderSource,
        applied: () => appliedState(applied),
        commandHandler: new CommandExecutor({
          handlers, context: unitContext, applied, logger,
          execTimeoutMs: o.work.execTimeoutMs,
          // The cached copy: collecting all hardware facts per command cost 0.2–0.3 s of CPU each.
          facts: () => agent.facts(),
          onAppliedChanged: () => { agent.appliedChanged(); },
          onConverged: () => agent.converged(),
        }),
        reverify: (signal) => reverifyStore(applied, unitContext, { handlers, signal }),
      },
    );
  } catch (err) {
    await leaderSource.close();
    etcdClient.close();
    if (err instanceof ClusterError) return usageError(err.message);
    throw err;
  }
  // The Hello carries the applied digest: read the record before connecting. A record that
  // cannot be used is logged and reported as drift ("re-apply needed"), not fatal.
  await applied.refresh();

  certificate.start();
  await agent.start();
  const metricsServer = await startMetricsServer(o.metricsListen, { logger: logger.child({ nodeId }), render: renderRegistry(metrics.registry) });
  const signal = await stopped;

  const graceMs = o.shutdownGraceMs;
  logger.info('shutting down', { signal, graceMs });
  const force = setTimeout(() => {
    logger.error('shutdown grace time exceeded; exiting', { graceMs });
    process.exit(1);
  }, graceMs);
  force.unref();
  // A second signal means "now".
  const again = (): void => process.exit(1);
  process.once('SIGTERM', again);
  process.once('SIGINT', again);

  await metricsServer?.close();
  await agent.stop(Math.max(0, graceMs - 1000));
  await certificate.stop();
  await leaderSource.close();
  unitContext.close();
  etcdClient.close();
  clearTimeout(force);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`cluster-agent: ${errorMessage(err)}\n`);
    process.exit(1);
  },
);
