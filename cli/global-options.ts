/**
 * Options every clusterctl command accepts, with their environment variables and the config
 * file (~/.config/clusterctl/config.yaml, keys as the option names: `coordinator: host:port`,
 * or a YAML list of replicas), and their compiled form, `ClientOptions`, which main.ts hands
 * to the coordinator client.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import { InvalidArgumentError } from '../shared/errors';
import type { OptionSpecs } from '../shared/options';
import { OUTPUT_FORMATS } from './output';

/** Where clusterctl dials when nothing else is said; cluster-coordinator's default --listen port. */
export const DEFAULT_COORDINATOR = '127.0.0.1:7400';

export const CONFIG_ENV = 'CLUSTERCTL_CONFIG';

export function defaultConfigPath(env: NodeJS.ProcessEnv): string {
  const base = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config');
  return join(base, 'clusterctl', 'config.yaml');
}

export const GLOBAL_OPTIONS = {
  coordinator: {
    kind: 'list',
    description: 'coordinator replicas, comma separated, tried in order (any replica serves the API)',
    env: 'CLUSTER_COORDINATOR',
    default: [DEFAULT_COORDINATOR],
    placeholder: 'HOST:PORT[,...]',
  },
  timeout: {
    kind: 'duration',
    description: 'deadline of each request, connecting included (500ms, 5s, 1m)',
    env: 'CLUSTERCTL_TIMEOUT',
    default: '5s',
    placeholder: 'DURATION',
    min: 1,
  },
  output: {
    kind: 'string',
    short: 'o',
    description: 'output format',
    choices: OUTPUT_FORMATS,
    default: 'table',
    placeholder: OUTPUT_FORMATS.join('|'),
  },
} as const satisfies OptionSpecs;

/** How clusterctl talks to the coordinator: the global options compiled once (durations in ms). */
export interface ClientOptions {
  /**
   * HOST:PORT of each coordinator replica (--coordinator, CLUSTER_COORDINATOR, `coordinator:`),
   * tried in this order; duplicates removed.
   * @default ['127.0.0.1:7400']
   */
  endpoints: readonly string[];
  /**
   * Deadline of each request in ms, connecting (and moving to the next replica) included.
   * @default 5000 (--timeout 5s)
   */
  timeoutMs: number;
}

/** Checks and converts the global options into `ClientOptions`; a bad address is a local error. */
export function compileClientOptions(globals: { coordinator: readonly string[]; timeout: number }): ClientOptions {
  const endpoints = [...new Set(globals.coordinator.map((a) => checkAddress(a)))];
  if (endpoints.length === 0) throw new InvalidArgumentError(`--coordinator needs at least one HOST:PORT (e.g. ${DEFAULT_COORDINATOR})`);
  return { endpoints, timeoutMs: globals.timeout };
}

/**
 * HOST:PORT, checked here so a typo is a clear local error instead of a 5 s wait for a
 * connection that can never succeed. IPv6 literals go in brackets: `[::1]:7400`.
 */
export function checkAddress(address: string, flag = '--coordinator'): string {
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+):(\d{1,5})$/.exec(address);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port < 1 || port > 65535) {
    throw new InvalidArgumentError(`${flag} ${JSON.stringify(address)} is not HOST:PORT (e.g. ${DEFAULT_COORDINATOR})`);
  }
  return address;
}
