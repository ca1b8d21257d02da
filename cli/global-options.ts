/**
 * Options every clusterctl command accepts, with their environment variables and the config
 * file (~/.config/clusterctl/config.yaml, keys as the option names: `coordinator: host:port`,
 * or a YAML list of replicas), and their compiled form, `ClientOptions`, which main.ts hands
 * to the coordinator client.
 *
 * Credentials: every call is mutual TLS with a credentials file (`clusterctl user add` writes
 * one; the first coordinator writes admin.yaml to its pki dir), found through --credentials,
 * CLUSTERCTL_CREDENTIALS or the config file key `credentials`, else /etc/cluster/pki/admin.yaml
 * when it is readable. Its `coordinator` endpoints are used when --coordinator is not given.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { InvalidArgumentError, UnauthenticatedError } from '../shared/errors';
import { ADMIN_CREDENTIALS_FILE, DEFAULT_PKI_DIR, parseCredentials, type Credentials } from '../shared/pki/credentials-file';
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
    placeholder: 'HOST:PORT[,...]',
  },
  credentials: {
    kind: 'string',
    description: `credentials file (CA, certificate, key, coordinator) [default: ${DEFAULT_PKI_DIR}/${ADMIN_CREDENTIALS_FILE} when readable]`,
    env: 'CLUSTERCTL_CREDENTIALS',
    placeholder: 'FILE',
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
   * @default the credentials file's `coordinator`, else ['127.0.0.1:7400']
   */
  endpoints: readonly string[];
  /** The identity every call is made with (mutual TLS). */
  credentials: Credentials;
  /** Where the credentials were read from (for messages). */
  credentialsFile: string;
  /**
   * Deadline of each request in ms, connecting (and moving to the next replica) included.
   * @default 5000 (--timeout 5s)
   */
  timeoutMs: number;
}

const WAYS = `give one with --credentials FILE, the CLUSTERCTL_CREDENTIALS environment variable, or \`credentials: FILE\` in the config file`;

/** Reads the credentials file: the one given, else the default admin.yaml if readable; one line when none can be read. */
export function loadCredentials(given: string | undefined, readFile: (path: string) => string = (p) => readFileSync(p, 'utf8')): { credentials: Credentials; file: string } {
  const file = given ?? `${DEFAULT_PKI_DIR}/${ADMIN_CREDENTIALS_FILE}`;
  let text: string;
  try {
    text = readFile(file);
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as NodeJS.ErrnoException).code === 'EACCES' ? 'permission denied' : (err as Error).message;
    if (given === undefined) throw new UnauthenticatedError(`no credentials to call the coordinator with (${file}: ${why}): ${WAYS}`);
    throw new UnauthenticatedError(`cannot read credentials file ${file}: ${why}; ${WAYS}`);
  }
  return { credentials: parseCredentials(text, `credentials file ${file}`), file };
}

/**
 * Checks and converts the global options into `ClientOptions`; a bad address is a local error.
 * Reads the credentials file (once per command, when the command first needs the coordinator).
 */
export function compileClientOptions(
  globals: { coordinator?: readonly string[]; timeout: number; credentials?: string },
  readFile?: (path: string) => string,
): ClientOptions {
  const { credentials, file } = loadCredentials(globals.credentials, readFile);
  // An empty list is what the parser gives when no --coordinator was said anywhere.
  const given = globals.coordinator !== undefined && globals.coordinator.length > 0 ? globals.coordinator : credentials.coordinator;
  const endpoints = [...new Set(given.map((a) => checkAddress(a)))];
  if (endpoints.length === 0) throw new InvalidArgumentError(`--coordinator needs at least one HOST:PORT (e.g. ${DEFAULT_COORDINATOR})`);
  return { endpoints, timeoutMs: globals.timeout, credentials, credentialsFile: file };
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
