/**
 * cluster-coordinator's options, declared once (flags, CLUSTER_* environment, YAML config
 * file) and compiled into `CoordinatorConfig` for main.ts.
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { formatHelp, InvalidArgumentError, isLogLevel, isValidSegment, parseOptions, DEFAULT_PREFIX, type LogLevel, type OptionSpecs } from '../shared';
import { parseHostPort } from './grpc-server';

export const COORDINATOR_OPTIONS = {
  etcd: { kind: 'list', env: 'CLUSTER_ETCD', required: true, placeholder: 'HOST:PORT[,HOST:PORT...]', description: 'etcd endpoints' },
  listen: { kind: 'string', env: 'CLUSTER_LISTEN', default: '0.0.0.0:7400', placeholder: 'HOST:PORT', description: 'gRPC address for agents and clusterctl (port 0 = any free port)' },
  advertise: { kind: 'string', env: 'CLUSTER_ADVERTISE', placeholder: 'HOST:PORT', description: 'address agents dial when this replica leads [default: the listen address with the bound port]' },
  prefix: { kind: 'string', env: 'CLUSTER_PREFIX', default: DEFAULT_PREFIX, placeholder: '/PATH/', description: 'etcd key prefix of this cluster' },
  replicaId: { kind: 'string', env: 'CLUSTER_REPLICA_ID', placeholder: 'ID', description: 'this replica\'s name in the election [default: hostname-<random>]' },
  // 10 s: a crashed leader is replaced within ~10 s; keepalives every TTL/3 leave two
  // retries, which rides out an etcd leader election (~1-3 s) without deposing the
  // coordinator. etcd3's Election default of 60 s would stall agents for a minute.
  electionTtl: { kind: 'duration', env: 'CLUSTER_ELECTION_TTL', default: 10, unit: 's', min: 2000, placeholder: 'SECONDS', description: 'leader lease TTL: failover time after a leader dies' },
  pingInterval: { kind: 'duration', env: 'CLUSTER_PING_INTERVAL', default: 10, unit: 's', min: 100, placeholder: 'SECONDS', description: 'how often the leader pings each agent stream' },
  resyncInterval: { kind: 'duration', env: 'CLUSTER_RESYNC_INTERVAL', default: 30, unit: 's', min: 100, placeholder: 'SECONDS', description: 'period of the full inventory pass (watch events trigger passes too)' },
  eventRetention: { kind: 'int', env: 'CLUSTER_EVENT_RETENTION', default: 10000, min: 1, placeholder: 'N', description: 'number of events kept in etcd' },
  shutdownGrace: { kind: 'duration', env: 'CLUSTER_SHUTDOWN_GRACE', default: 5, unit: 's', placeholder: 'SECONDS', description: 'on SIGTERM: time open calls get to finish' },
  shutdownForce: { kind: 'duration', env: 'CLUSTER_SHUTDOWN_FORCE', default: 15, unit: 's', placeholder: 'SECONDS', description: 'on SIGTERM: exit anyway after this long' },
  logLevel: { kind: 'string', env: 'CLUSTER_LOG_LEVEL', default: 'info', choices: ['debug', 'info', 'warn', 'error', 'silent'], description: 'log level' },
  version: { kind: 'boolean', short: 'V', description: 'print the version and exit' },
} as const satisfies OptionSpecs;

export const USAGE = 'Usage: cluster-coordinator --etcd HOST:PORT[,HOST:PORT...] [--listen HOST:PORT] [options]';

export interface CoordinatorConfig {
  etcd: string[];
  listen: string;
  advertise?: string;
  prefix: string;
  replicaId: string;
  electionTtlMs: number;
  pingIntervalMs: number;
  resyncIntervalMs: number;
  eventRetention: number;
  shutdownGraceMs: number;
  shutdownForceMs: number;
  logLevel: LogLevel;
}

export type ParsedCommandLine = { kind: 'help'; text: string } | { kind: 'version' } | { kind: 'run'; config: CoordinatorConfig };

export function defaultReplicaId(): string {
  const host = hostname().replace(/[^A-Za-z0-9._:-]/g, '-').replace(/^[^A-Za-z0-9]+/, '') || 'coordinator';
  return `${host.slice(0, 200)}-${randomBytes(3).toString('hex')}`;
}

/** Parses and validates; throws InvalidArgumentError with a one-line fix. */
export function parseCoordinatorArgs(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): ParsedCommandLine {
  // --version must work without the required options (and without a config file).
  if (argv.some((a) => a === '--version' || a === '-V') && !argv.some((a) => a === '--help' || a === '-h')) return { kind: 'version' };
  const parsed = parseOptions(COORDINATOR_OPTIONS, {
    argv, env, configEnv: 'CLUSTER_COORDINATOR_CONFIG', defaultConfigPath: '/etc/cluster/coordinator.yaml', allowPositionals: false,
  });
  if (parsed.help) return { kind: 'help', text: formatHelp(USAGE, COORDINATOR_OPTIONS) };
  const v = parsed.values;
  if (v.version) return { kind: 'version' };
  parseHostPort(v.listen, '--listen address');
  if (v.advertise !== undefined) {
    const { port } = parseHostPort(v.advertise, '--advertise address');
    if (port === 0) throw new InvalidArgumentError(`--advertise ${v.advertise}: agents need a real port, not 0`);
  }
  const replicaId = v.replicaId ?? defaultReplicaId();
  if (!isValidSegment(replicaId)) throw new InvalidArgumentError(`--replica-id ${JSON.stringify(replicaId)}: use 1-253 characters from A-Z a-z 0-9 . _ : -`);
  if (!isLogLevel(v.logLevel)) throw new InvalidArgumentError(`--log-level ${v.logLevel}: use debug, info, warn or error`);
  if (v.pingInterval * 3 >= 600_000) throw new InvalidArgumentError('--ping-interval must be under 200 s');
  return {
    kind: 'run',
    config: {
      etcd: v.etcd,
      listen: v.listen,
      ...(v.advertise !== undefined ? { advertise: v.advertise } : {}),
      prefix: v.prefix,
      replicaId,
      electionTtlMs: v.electionTtl,
      pingIntervalMs: v.pingInterval,
      resyncIntervalMs: v.resyncInterval,
      eventRetention: v.eventRetention,
      shutdownGraceMs: v.shutdownGrace,
      shutdownForceMs: v.shutdownForce,
      logLevel: v.logLevel,
    },
  };
}
