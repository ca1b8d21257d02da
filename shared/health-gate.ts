/**
 * The health gate of a rolling upgrade or commission, and its rollback policy (issue 15 §2):
 * their bounds and the one compile step (pure, tested by table in
 * test/jobs/health-gate.test.ts) that both clusterctl (a typo fails before any round trip) and
 * the coordinator (whatever client sent it) run, so bad input is refused with one line naming
 * the flag and nothing is stored.
 *
 * Where the probes run: on the node, by the agent, like the bundle's verify probes (agent
 * /units/verify-probes.ts): a TCP/HTTP probe dials what it names from the node itself (write
 * 127.0.0.1 for "the node's own service"), a command probe runs as the agent runs guarded
 * commands (a shell under the node root). Every probe must pass right after the apply (retried
 * within its timeout: a service just restarted needs a moment) and then on every round, each
 * `intervalMs`, until `soakMs` have passed since the apply ended (one more round at the end).
 */
import { InvalidArgumentError } from './errors';
import { parseDuration } from './options';
import type { VerifyProbe } from './bundle/types';

/** An extra probe: the bundle's probe kinds that make sense from the outside (no systemdActive). */
export type HealthProbe =
  | { id: string; tcp: string; timeoutMs?: number }
  | { id: string; http: string; expectStatus?: number; timeoutMs?: number }
  | { id: string; command: string; expectExit?: number; timeoutMs?: number };

export interface HealthGate {
  /** How long after the apply the probes must keep passing (0: once, right after it). */
  soakMs: number;
  /** Time between probe rounds during the soak. */
  intervalMs: number;
  probes: HealthProbe[];
}

export const ROLLBACK_POLICIES = ['on-failure', 'never'] as const;
export type RollbackPolicy = (typeof ROLLBACK_POLICIES)[number];

export const HEALTH_LIMITS = {
  /** @default 3600000 (1 h): a longer soak holds a batch (and its nodes) longer than any operator watches. */
  maxSoakMs: 3_600_000,
  /** @default 1000: probes are not a load test. */
  minIntervalMs: 1000,
  /** @default 10000 */
  defaultIntervalMs: 10_000,
  /** @default 8 */
  maxProbes: 8,
  /** Per probe. @default 60000 */
  maxProbeTimeoutMs: 60_000,
  /** @default 5000 (the bundle's probes' default too) */
  defaultProbeTimeoutMs: 5000,
  /** Characters of one probe's target or command. @default 1024 */
  maxProbeText: 1024,
} as const;

/** The flags as given (clusterctl) or the request's fields (coordinator); all optional. */
export interface HealthGateInput {
  soakMs?: number;
  intervalMs?: number;
  probes?: readonly HealthProbeInput[];
}

/** The proto HealthProbe, camelCased (empty strings and zeros: not set). */
export interface HealthProbeInput {
  id?: string;
  tcp?: string;
  http?: string;
  expectStatus?: number;
  command?: string;
  expectExit?: number;
  timeoutMs?: number;
}

const HOST_PORT = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;

function probeProblems(p: HealthProbeInput, where: string): string[] {
  const given = (['tcp', 'http', 'command'] as const).filter((k) => (p[k] ?? '') !== '');
  if (given.length !== 1) return [`${where}: give exactly one of tcp, http, command (got ${given.length === 0 ? 'none' : given.join(' and ')})`];
  const text = p[given[0]] ?? '';
  const out: string[] = [];
  if (text.length > HEALTH_LIMITS.maxProbeText) out.push(`${where}: ${given[0]} is ${text.length} characters; at most ${HEALTH_LIMITS.maxProbeText}`);
  if (given[0] === 'tcp') {
    const m = HOST_PORT.exec(text);
    if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) out.push(`${where}: tcp wants HOST:PORT with a port 1-65535, e.g. 127.0.0.1:8080`);
  }
  if (given[0] === 'http' && !/^https?:\/\/[^\s]+$/.test(text)) out.push(`${where}: http wants an http:// or https:// URL, e.g. http://127.0.0.1:8080/healthz`);
  if (p.expectStatus !== undefined && p.expectStatus !== 0 && (given[0] !== 'http' || p.expectStatus < 100 || p.expectStatus > 599)) {
    out.push(`${where}: expect status is for http probes, 100-599`);
  }
  if (p.expectExit !== undefined && p.expectExit !== 0 && (given[0] !== 'command' || !Number.isInteger(p.expectExit) || p.expectExit < 0 || p.expectExit > 255)) {
    out.push(`${where}: expect exit is for command probes, 0-255`);
  }
  if (p.timeoutMs !== undefined && (p.timeoutMs < 0 || p.timeoutMs > HEALTH_LIMITS.maxProbeTimeoutMs)) {
    out.push(`${where}: timeout must be at most ${HEALTH_LIMITS.maxProbeTimeoutMs / 1000} s`);
  }
  return out;
}

/**
 * The gate to run, or undefined when none was asked (no soak, no extra probe: the apply's own
 * verify probes are then the only check, as before). Throws InvalidArgumentError listing every
 * problem.
 */
export function compileHealthGate(input: HealthGateInput): HealthGate | undefined {
  const soakMs = input.soakMs ?? 0;
  const probes = input.probes ?? [];
  const problems: string[] = [];
  if (!Number.isInteger(soakMs) || soakMs < 0 || soakMs > HEALTH_LIMITS.maxSoakMs) problems.push(`soak: must be between 0 and ${HEALTH_LIMITS.maxSoakMs / 60_000} min`);
  if (probes.length > HEALTH_LIMITS.maxProbes) {
    // Counted before anything else is looked at: one line, not one per probe.
    throw new InvalidArgumentError(`probes: ${probes.length} given; a job takes at most ${HEALTH_LIMITS.maxProbes}`);
  }
  probes.forEach((p, i) => problems.push(...probeProblems(p, `probe ${i + 1}`)));
  const asked = input.intervalMs ?? 0;
  if (asked !== 0 && (!Number.isInteger(asked) || asked < HEALTH_LIMITS.minIntervalMs || asked > HEALTH_LIMITS.maxSoakMs)) {
    problems.push(`probe interval: must be between ${HEALTH_LIMITS.minIntervalMs / 1000} s and ${HEALTH_LIMITS.maxSoakMs / 60_000} min`);
  }
  if (problems.length > 0) throw new InvalidArgumentError(problems.join('; '));
  if (soakMs === 0 && probes.length === 0) {
    if (asked !== 0) throw new InvalidArgumentError('probe interval: only with a soak time (--soak)');
    return undefined;
  }
  const intervalMs = asked !== 0 ? asked : Math.max(HEALTH_LIMITS.minIntervalMs, Math.min(HEALTH_LIMITS.defaultIntervalMs, soakMs));
  return { soakMs, intervalMs, probes: probes.map((p, i) => compileProbe(p, i)) };
}

function compileProbe(p: HealthProbeInput, i: number): HealthProbe {
  const id = (p.id ?? '').trim() || `probe-${i + 1}`;
  const timeout = p.timeoutMs ? { timeoutMs: p.timeoutMs } : {};
  if (p.tcp) return { id, tcp: p.tcp, ...timeout };
  if (p.http) return { id, http: p.http, ...(p.expectStatus ? { expectStatus: p.expectStatus } : {}), ...timeout };
  return { id, command: p.command ?? '', ...(p.expectExit ? { expectExit: p.expectExit } : {}), ...timeout };
}

/**
 * The rollback policy of a job. The default for an upgrade is `on-failure`: the version it
 * replaces was running on those very nodes, so going back to it is the known-good state, and a
 * group left half on a version that failed is the worse outcome at 3 a.m.; `--rollback never`
 * keeps the failed nodes as they are for inspection. Other kinds have no previous version to
 * go back to (a commission's is "nothing"), so they take only `never`.
 */
export function rollbackPolicy(text: string | undefined, kind: string, dryRun: boolean): RollbackPolicy {
  const t = (text ?? '').trim();
  if (t !== '' && !(ROLLBACK_POLICIES as readonly string[]).includes(t)) {
    throw new InvalidArgumentError(`rollback: ${JSON.stringify(t.slice(0, 40))} is not one of ${ROLLBACK_POLICIES.join(', ')}`);
  }
  if (kind !== 'upgrade' || dryRun) {
    if (t === 'on-failure') throw new InvalidArgumentError(`--rollback on-failure is for upgrades (a ${dryRun ? 'dry run changes nothing' : `${kind} has no previous version to go back to`})`);
    return 'never';
  }
  return t === '' ? 'on-failure' : (t as RollbackPolicy);
}

/** `--probe-http URL` or `URL=STATUS` (e.g. http://127.0.0.1:8080/healthz=204). */
export function parseHttpProbeFlag(text: string): HealthProbeInput {
  const m = /^(.*)=(\d{3})$/.exec(text.trim());
  return m ? { http: m[1], expectStatus: Number(m[2]) } : { http: text.trim() };
}

/** The extra probes of `clusterctl ... --probe-tcp/--probe-http/--probe-command` (ids by kind and position). */
export function probesFromFlags(flags: { tcp?: readonly string[]; http?: readonly string[]; command?: readonly string[] }): HealthProbeInput[] {
  return [
    ...(flags.tcp ?? []).map((t, i) => ({ id: `tcp-${i + 1}`, tcp: t.trim() })),
    ...(flags.http ?? []).map((h, i) => ({ id: `http-${i + 1}`, ...parseHttpProbeFlag(h) })),
    ...(flags.command ?? []).map((c, i) => ({ id: `command-${i + 1}`, command: c })),
  ];
}

/** Duration flags of the gate (`--soak 30s`), as ms. */
export function durationFlag(flag: string, text: string | undefined): number | undefined {
  if (text === undefined || text.trim() === '') return undefined;
  try {
    return parseDuration(text, 's');
  } catch {
    throw new InvalidArgumentError(`${flag} ${JSON.stringify(text.slice(0, 40))}: use a duration such as 30s, 2m`);
  }
}

/** The probes an agent runs in the gate, as verify probes. */
export function gateProbes(gate: Pick<HealthGate, 'probes'>): VerifyProbe[] {
  return gate.probes.map((p) => ({ ...p }));
}
