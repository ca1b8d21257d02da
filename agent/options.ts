/**
 * The agent's one options table (STYLE.md: one documented options object per runtime,
 * compiled once). Flags, then CLUSTER_* environment variables, then the YAML config file
 * (`--config FILE`, CLUSTER_AGENT_CONFIG, or /etc/cluster/agent.yaml when it exists), then
 * the defaults below. Options consumed by the config-unit code (root, systemd bus and unit
 * directory, package backend) are declared here too so there is one `--help`.
 *
 * `compileAgentConfig` turns the parsed values into `AgentConfig`, the one object main.ts
 * passes down; knobs without a flag (the link's timings) get their documented defaults here
 * (`AGENT_DEFAULTS`), not inside the components.
 */
import { DEFAULT_PREFIX } from '../shared/keyspace';
import type { LogLevel } from '../shared/logger';
import { parseMetricsListen, type MetricsListen } from '../shared/metrics-server';
import { formatHelp, parseDuration, parseOptions, type OptionSpecs, type OptionValues, type ParseResult } from '../shared/options';
import { DEFAULT_EXEC_TIMEOUT_MS } from './command-executor';
import type { LinkTimings } from './coordinator-link';
import { DEFAULT_FACTS_PROBE_TIMEOUT_MS } from './facts-provider';
import { DEFAULT_PACKAGE_COMMAND_TIMEOUT_MS } from './packages/run-command';
import { DEFAULT_SYSTEMD_CALL_TIMEOUT_MS, DEFAULT_SYSTEMD_JOB_TIMEOUT_MS } from './systemd/timeouts';
import { DEFAULT_LEASE_TTL_SECONDS } from './lease-membership';

export const AGENT_CONFIG_ENV = 'CLUSTER_AGENT_CONFIG';
export const DEFAULT_AGENT_CONFIG = '/etc/cluster/agent.yaml';

export const AGENT_OPTIONS = {
  etcd: {
    kind: 'list', env: 'CLUSTER_ETCD', required: true, placeholder: 'HOST:PORT[,HOST:PORT...]',
    description: 'etcd endpoints (TLS: the agent presents its own certificate, whose CN is its etcd user)',
  },
  nodeId: {
    kind: 'string', env: 'CLUSTER_NODE_ID', placeholder: 'ID',
    description: 'node id (default: /etc/machine-id, else the DMI system UUID)',
  },
  stateDir: {
    kind: 'string', env: 'CLUSTER_STATE_DIR', default: '/var/lib/cluster-agent', placeholder: 'DIR',
    description: 'where the agent keeps its applied record and its certificate (pki/)',
  },
  joinToken: {
    kind: 'string', env: 'CLUSTER_JOIN_TOKEN', placeholder: 'TOKEN',
    description: 'join token (clusterctl token create): used once, when the state dir holds no certificate yet',
  },
  joinTokenFile: {
    kind: 'string', env: 'CLUSTER_JOIN_TOKEN_FILE', placeholder: 'FILE',
    description: 'file holding the join token (keeps it out of the process list)',
  },
  joinAddress: {
    kind: 'string', env: 'CLUSTER_JOIN_ADDRESS', placeholder: 'HOST:PORT',
    description: 'a coordinator to join through (etcd admits only agents with a certificate, so the first join cannot find the leader there)',
  },
  leaseTtl: {
    kind: 'duration', env: 'CLUSTER_LEASE_TTL', default: DEFAULT_LEASE_TTL_SECONDS, unit: 's', min: 2000, placeholder: 'SECONDS',
    description: 'TTL of the membership lease; the node shows Unreachable this long after the agent dies',
  },
  prefix: {
    kind: 'string', env: 'CLUSTER_PREFIX', default: DEFAULT_PREFIX, placeholder: 'PREFIX',
    description: 'etcd key prefix',
  },
  coordinator: {
    kind: 'string', env: 'CLUSTER_AGENT_COORDINATOR', placeholder: 'HOST:PORT',
    description: 'fixed coordinator address instead of discovering the leader in etcd',
  },
  hostname: {
    kind: 'string', env: 'CLUSTER_HOSTNAME', placeholder: 'NAME',
    description: 'hostname to report (default: the machine\'s; for sandboxes)',
  },
  bootId: {
    kind: 'string', env: 'CLUSTER_BOOT_ID', placeholder: 'ID',
    description: 'boot id to report (default: /proc/sys/kernel/random/boot_id; sandboxes simulating a reboot)',
  },
  root: {
    kind: 'string', env: 'CLUSTER_ROOT', default: '/', placeholder: 'DIR',
    description: 'node root directory that file paths of units resolve under (sandbox mode)',
  },
  systemdBus: {
    kind: 'string', env: 'CLUSTER_SYSTEMD_BUS', default: 'system', choices: ['system', 'session'], placeholder: 'system|session',
    description: 'D-Bus bus of the systemd manager (session: a user manager, for tests)',
  },
  systemdUnitDir: {
    kind: 'string', env: 'CLUSTER_SYSTEMD_UNIT_DIR', default: '/etc/systemd/system', placeholder: 'DIR',
    description: 'where systemd unit files are written (user manager: ~/.config/systemd/user)',
  },
  packageBackend: {
    kind: 'string', env: 'CLUSTER_PACKAGE_BACKEND', default: 'auto', choices: ['auto', 'dnf', 'apt', 'rpm'], placeholder: 'auto|dnf|apt|rpm',
    description: 'package manager used by package units',
  },
  factsInterval: {
    kind: 'duration', env: 'CLUSTER_FACTS_INTERVAL', default: '10m', min: 1000, placeholder: 'DURATION',
    description: 'how often hardware facts are re-collected (written only when they change)',
  },
  hardwareCheckInterval: {
    kind: 'duration', env: 'CLUSTER_HARDWARE_CHECK_INTERVAL', default: '30s', min: 0, placeholder: 'DURATION',
    description: 'how often block devices and network interfaces are compared (cheap); a change re-collects the facts at once (0 = off)',
  },
  shutdownGrace: {
    kind: 'duration', env: 'CLUSTER_SHUTDOWN_GRACE', default: '10s', min: 0, placeholder: 'DURATION',
    description: 'on SIGTERM/SIGINT, time to stop cleanly before exiting anyway',
  },
  metricsListen: {
    kind: 'string', env: 'CLUSTER_METRICS_LISTEN', default: '127.0.0.1:7402', placeholder: 'HOST:PORT|off',
    description: 'plain-HTTP Prometheus endpoint (GET /metrics); off = none. A port that cannot be bound is logged and the agent runs on without it',
  },
  logLevel: {
    kind: 'string', env: 'CLUSTER_LOG_LEVEL', default: 'info', choices: ['debug', 'info', 'warn', 'error', 'silent'], placeholder: 'LEVEL',
    description: 'log level',
  },
  version: {
    kind: 'boolean',
    description: 'print the version and exit',
  },
} as const satisfies OptionSpecs;

export type AgentOptions = OptionValues<typeof AGENT_OPTIONS>;

export const AGENT_USAGE = `Usage: cluster-agent --etcd HOST:PORT[,HOST:PORT...] [--node-id ID] [--state-dir DIR] [--join-address HOST:PORT --join-token-file FILE] [options]
       cluster-agent apply|verify|remove|plan ...   (local config-unit commands, see cluster-agent apply --help)`;

/** Parses the daemon's argv/env/config file. Throws InvalidArgumentError with a fix on bad input. */
export function parseAgentOptions(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): ParseResult<typeof AGENT_OPTIONS> {
  return parseOptions(AGENT_OPTIONS, {
    argv,
    env,
    configEnv: AGENT_CONFIG_ENV,
    defaultConfigPath: DEFAULT_AGENT_CONFIG,
    allowPositionals: false,
  });
}

export function agentHelp(): string {
  return formatHelp(AGENT_USAGE, AGENT_OPTIONS, `Config file: --config FILE, or ${AGENT_CONFIG_ENV}, or ${DEFAULT_AGENT_CONFIG} when it exists.`);
}

/** Knobs without a flag: their one home. Durations in ms. */
export const AGENT_DEFAULTS = {
  /** @default 600000 (the --facts-interval default, 10 min) — for agents built without options (tests, benchmarks). */
  factsIntervalMs: parseDuration(AGENT_OPTIONS.factsInterval.default),
  /** @default 30000 (the --hardware-check-interval default). */
  hardwareCheckIntervalMs: parseDuration(AGENT_OPTIONS.hardwareCheckInterval.default),
  link: {
    /** @default 10000 — how long the link waits for Welcome after Hello. */
    helloTimeoutMs: 10_000,
    /**
     * @default 250 ms .. 5 s — reconnect backoff bounds (full jitter). The first redial after a
     * dropped stream comes within 250 ms, inside the coordinator's 1.5 s stream grace; the cap
     * is far under the 45 s lease, and a new leader or etcd coming back wakes the wait anyway.
     */
    backoff: { initialMs: 250, maxMs: 5_000 },
    /** @default 1000 — longest random pause before dialling a newly elected leader. */
    newLeaderJitterMs: 1000,
    /** @default 256 — command results remembered by id (a re-sent Command is answered from them). */
    resultCapacity: 256,
    /** @default true — idle connections to the follower coordinators, so a failover needs no TLS handshake. */
    standbyConnections: true,
  } satisfies LinkTimings,
  /** Timeouts of the work commands do (the constants live with the code that applies them). */
  work: {
    /** @default 600000 (10 min) — an EXEC command without its own timeout. */
    execTimeoutMs: DEFAULT_EXEC_TIMEOUT_MS,
    /** @default 10000 — one facts probe. */
    factsProbeTimeoutMs: DEFAULT_FACTS_PROBE_TIMEOUT_MS,
    /** @default 30000 — one systemd D-Bus call. */
    systemdCallTimeoutMs: DEFAULT_SYSTEMD_CALL_TIMEOUT_MS,
    /** @default 300000 (5 min) — one systemd start/stop/restart job. */
    systemdJobTimeoutMs: DEFAULT_SYSTEMD_JOB_TIMEOUT_MS,
    /** @default 600000 (10 min) — one package-manager command. */
    packageCommandTimeoutMs: DEFAULT_PACKAGE_COMMAND_TIMEOUT_MS,
  },
} as const;

export type WorkTimeouts = { -readonly [K in keyof typeof AGENT_DEFAULTS.work]: number };

/** Every knob of one agent daemon, compiled once (durations in ms). */
export interface AgentConfig {
  /** etcd endpoints. Required. */
  etcd: string[];
  /** Explicit node id. @default /etc/machine-id, else the DMI system UUID */
  nodeId?: string;
  /** @default /proc/sys/kernel/random/boot_id */
  bootId?: string;
  /** @default the machine's hostname */
  hostname?: string;
  /** Where the applied record and the certificate (pki/) live. @default /var/lib/cluster-agent */
  stateDir: string;
  /** The join token, used only while the state dir holds no usable certificate. @default none */
  joinToken?: string;
  /** A file holding the join token (read at start, only when a join is needed). @default none */
  joinTokenFile?: string;
  /** A coordinator HOST:PORT to join through when the state dir holds no certificate. @default --coordinator */
  joinAddress?: string;
  /** Membership lease TTL. @default 45000 */
  leaseTtlMs: number;
  /** etcd key prefix. @default DEFAULT_PREFIX ('/cluster/v1/') */
  prefix: string;
  /** Fixed coordinator HOST:PORT instead of the elected leader. @default none (follow the election) */
  coordinator?: string;
  /** Node root that unit paths resolve under. @default / */
  root: string;
  /** @default 'system' */
  systemdBus: 'system' | 'session';
  /** @default /etc/systemd/system */
  systemdUnitDir: string;
  /** @default 'auto' */
  packageBackend: string;
  /** Facts re-collection interval; 0 = only at start. @default 600000 */
  factsIntervalMs: number;
  /** Period of the cheap hardware comparison; 0 = off. @default 30000 */
  hardwareCheckIntervalMs: number;
  /** Time to stop cleanly on SIGTERM/SIGINT before exiting anyway. @default 10000 */
  shutdownGraceMs: number;
  /** Where the Prometheus endpoint listens, or off. @default 127.0.0.1:7402 */
  metricsListen: MetricsListen;
  /** @default 'info' */
  logLevel: LogLevel;
  /** The coordinator link's timings. @default AGENT_DEFAULTS.link */
  link: LinkTimings;
  /** Timeouts of command work (exec, facts, systemd, packages). @default AGENT_DEFAULTS.work */
  work: WorkTimeouts;
}

/** Parsed option values → the compiled config main.ts passes down. */
export function compileAgentConfig(v: AgentOptions): AgentConfig {
  return {
    etcd: v.etcd,
    ...(v.nodeId !== undefined ? { nodeId: v.nodeId } : {}),
    ...(v.bootId !== undefined ? { bootId: v.bootId } : {}),
    ...(v.hostname !== undefined ? { hostname: v.hostname } : {}),
    stateDir: v.stateDir,
    ...(v.joinToken !== undefined ? { joinToken: v.joinToken } : {}),
    ...(v.joinTokenFile !== undefined ? { joinTokenFile: v.joinTokenFile } : {}),
    ...(v.joinAddress !== undefined ? { joinAddress: v.joinAddress } : {}),
    leaseTtlMs: v.leaseTtl,
    prefix: v.prefix,
    ...(v.coordinator !== undefined ? { coordinator: v.coordinator } : {}),
    root: v.root,
    systemdBus: v.systemdBus as 'system' | 'session',
    systemdUnitDir: v.systemdUnitDir,
    packageBackend: v.packageBackend,
    factsIntervalMs: v.factsInterval,
    hardwareCheckIntervalMs: v.hardwareCheckInterval,
    shutdownGraceMs: v.shutdownGrace,
    metricsListen: parseMetricsListen(v.metricsListen),
    logLevel: v.logLevel as LogLevel,
    link: { ...AGENT_DEFAULTS.link, backoff: { ...AGENT_DEFAULTS.link.backoff } },
    work: { ...AGENT_DEFAULTS.work },
  };
}
