/**
 * The leader holds one descriptor per agent connection, and etcd connections, files and
 * listeners besides. At the open-files limit every accept and every redial fails with EMFILE:
 * seen at 20,000 agents on a box whose hard limit is 20,000, where the leader, unable to reach
 * etcd again, lost its leadership and every stream with it, with nothing in its log before.
 * This warns while there is still room, and says what to raise (Node raises its soft limit to
 * the hard one at start; the packaged unit sets LimitNOFILE=65536).
 */
import { readdirSync, readFileSync } from 'node:fs';
import type { Logger } from '../shared';

/** The soft "Max open files" of /proc/self/limits (`text`: its content); undefined when unlimited or unreadable. */
export function openFilesLimit(text?: string): number | undefined {
  let limits = text;
  if (limits === undefined) {
    try {
      limits = readFileSync('/proc/self/limits', 'utf8');
    } catch {
      return undefined;
    }
  }
  const m = /^Max open files\s+(\d+|unlimited)\s+/m.exec(limits);
  if (!m || m[1] === 'unlimited') return undefined;
  const n = Number(m[1]);
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

/** Descriptors this process holds now (undefined where /proc is not there). */
export function openFds(): number | undefined {
  try {
    return readdirSync('/proc/self/fd').length;
  } catch {
    return undefined;
  }
}

export interface FdHeadroomOptions {
  logger: Logger;
  /** The open-files limit (default: this process's soft limit). */
  limit?: number;
  /**
   * Descriptors held besides client connections at first (default: those open when this is
   * made). Not counted per connection (a readdir of /proc/self/fd at each of N connections is
   * O(N²)): only past half the limit, at most once a second.
   */
  baseFds?: number;
  /** Descriptors open now (default: /proc/self/fd), counted again once connections pass half the limit. */
  countFds?: () => number | undefined;
  /** Warn once connections reach this share of the limit. @default 0.8 */
  warnAt?: number;
  /** At most one warning per this many ms. @default 60_000 */
  everyMs?: number;
  now?: () => number;
}

export class FdHeadroom {
  readonly limit: number | undefined;
  /** Descriptors held besides client connections, as last counted. */
  baseFds: number;
  private readonly warnAt: number;
  private readonly countFds: () => number | undefined;
  private lastCountAt?: number;
  private readonly everyMs: number;
  private readonly now: () => number;
  private lastWarnAt?: number;

  constructor(private readonly o: FdHeadroomOptions) {
    this.limit = o.limit ?? openFilesLimit();
    this.countFds = o.countFds ?? openFds;
    this.baseFds = o.baseFds ?? this.countFds() ?? 0;
    this.warnAt = o.warnAt ?? 0.8;
    this.everyMs = o.everyMs ?? 60_000;
    this.now = o.now ?? Date.now;
  }

  /** Called as a connection arrives, with the number now held; true when it warned. */
  check(connections: number): boolean {
    const limit = this.limit;
    if (limit === undefined || connections + this.baseFds < 0.5 * limit) return false;
    const now = this.now();
    // Near the limit: count what is really open (the other descriptors grow after start:
    // etcd connections, files), at most once a second.
    if (this.lastCountAt === undefined || now - this.lastCountAt >= 1000) {
      this.lastCountAt = now;
      const open = this.countFds();
      if (open !== undefined) this.baseFds = Math.max(0, open - connections);
    }
    if (connections + this.baseFds < this.warnAt * limit) return false;
    if (this.lastWarnAt !== undefined && now - this.lastWarnAt < this.everyMs) return false;
    this.lastWarnAt = now;
    this.o.logger.warn('client connections near the open-files limit', {
      connections, otherFds: this.baseFds, limit,
      why: `each agent holds one connection (one descriptor); at ${limit} descriptors every new connection and every etcd redial fails with EMFILE and the leader loses its leadership`,
      fix: 'raise LimitNOFILE in the coordinator\'s systemd unit (the package sets 65536), or the hard limit (ulimit -Hn) of whatever starts it',
    });
    return true;
  }
}
