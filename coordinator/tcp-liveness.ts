/**
 * The leader finds an agent gone without a FIN (power cut, partition) through the kernel's own
 * TCP liveness check on each agent connection, not through HTTP/2 PINGs (issue 12 §1, §3):
 * keepalive probes once the connection has received nothing for a while, and a bound on how
 * long sent data may stay unacknowledged (TCP_USER_TIMEOUT). The two kernels send and answer
 * the probes; neither program wakes up. An HTTP/2 PING every 2 s had to be written, encrypted,
 * read, decrypted and answered by both programs: 5,000 a second at 10,000 agents, the leader's
 * largest idle cost. When the kernel gives up, the connection's read fails with ETIMEDOUT and
 * the agent's stream ends (connection-keepalive.ts records the peer as silent).
 *
 * Node sets SO_KEEPALIVE and TCP_KEEPIDLE only (libuv 1.46 fixes 10 probes 1 s apart: 11 s at
 * best, and never while data waits for an ACK), so the options are set by a small N-API addon,
 * native/tcp_liveness.c, built by `npm run build` (scripts/build-native) into dist/native/ and
 * packaged beside the coordinator's bundle.
 *
 * With a window of W seconds: probes after ceil(W/2) s without a received packet, one a second,
 * and the connection closed once nothing has been received for W s (TCP_USER_TIMEOUT, which
 * Linux applies to unanswered probes as to unacknowledged data, and, since 5.11, to a peer
 * whose receive window stays closed: an agent that stops reading for W s while more than its
 * receive buffer waits is dropped too). A healthy idle connection carries one probe and its
 * ACK every ceil(W/2) s, handled in the kernels' softirq (bench/README.md "fanout": about 3 %
 * of a core at 10,000 connections).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';

interface TcpLivenessAddon {
  set(fd: number, idleS: number, intervalS: number, count: number, userTimeoutMs: number): void;
  /** Reads back [SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT, TCP_USER_TIMEOUT] (tests). */
  get(fd: number): number[];
}

/** The kernel settings for a liveness window. */
export interface TcpLivenessSettings {
  idleS: number;
  intervalS: number;
  count: number;
  userTimeoutMs: number;
}

export const ADDON_FILE = 'tcp_liveness.node';

/** Where the addon is looked for: beside a bundle (packages), or dist/native/ (a build). */
export function addonCandidates(dir: string = __dirname): string[] {
  return [join(dir, ADDON_FILE), join(dir, '..', 'native', ADDON_FILE)];
}

/** Linux's largest TCP_KEEPCNT (MAX_TCP_KEEPCNT); with TCP_USER_TIMEOUT set the count is not used. */
const MAX_KEEPCNT = 127;

/** The probe timings for a window of `windowMs` (whole seconds, at least 2). */
export function livenessSettings(windowMs: number): TcpLivenessSettings {
  const windowS = Math.max(2, Math.round(windowMs / 1000));
  const idleS = Math.ceil(windowS / 2);
  return { idleS, intervalS: 1, count: Math.min(MAX_KEEPCNT, Math.max(1, windowS - idleS)), userTimeoutMs: windowS * 1000 };
}

/**
 * The errors a read fails with when the kernel gave up on a silent peer: ETIMEDOUT, or the
 * ICMP error it last received while retrying (a router, or the local neighbour table, saying
 * the host is unreachable). On an established socket they surface only then.
 */
export const SILENCE_ERRORS: ReadonlySet<string> = new Set(['ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN']);

/** Loaded addons by file (a test loads from its own candidates). */
const loaded = new Map<string, TcpLivenessAddon>();

/**
 * Loads the addon; throws with what to do when it is not there or does not load (a build
 * without a C compiler, another platform).
 */
export function loadTcpLiveness(candidates: string[] = addonCandidates()): TcpLivenessAddon {
  const file = candidates.find((f) => existsSync(f));
  if (!file) {
    throw new Error(`the TCP liveness addon (${ADDON_FILE}) is not built: looked in ${candidates.join(', ')}; run \`npm run build\` (it needs a C compiler and Node's headers), or start with --tcp-liveness 0 and a short --grpc-keepalive (2 s) to find dead agents by HTTP/2 PINGs instead`);
  }
  const cached = loaded.get(file);
  if (cached) return cached;
  const m = { exports: {} as Partial<TcpLivenessAddon> };
  try {
    process.dlopen(m, file);
  } catch (err) {
    throw new Error(`the TCP liveness addon ${file} does not load (${err instanceof Error ? err.message : String(err)}); rebuild it with \`npm run build\`, or start with --tcp-liveness 0 and --grpc-keepalive 2`);
  }
  if (typeof m.exports.set !== 'function' || typeof m.exports.get !== 'function') throw new Error(`${file} is not the TCP liveness addon (no set/get)`);
  const addon = m.exports as TcpLivenessAddon;
  loaded.set(file, addon);
  return addon;
}

/** The file descriptor of a connected net.Socket (undefined if it has none, e.g. a pipe wrapper). */
export function socketFd(socket: unknown): number | undefined {
  const handle = (socket as { _handle?: { fd?: unknown } } | undefined)?._handle;
  const fd = handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/** Sets the liveness window on a connected TCP socket's descriptor. */
export function applyTcpLiveness(addon: TcpLivenessAddon, fd: number, s: TcpLivenessSettings): void {
  addon.set(fd, s.idleS, s.intervalS, s.count, s.userTimeoutMs);
}
