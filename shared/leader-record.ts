/**
 * The election rule, written once: the leader is the candidate with the lowest create
 * revision under `keyspace.electionPrefix()`. Every reader — the coordinator's own election
 * (which fences its writes with that revision), `clusterctl status`, and the agent that dials
 * the leader — must apply the same rule to the same keys, or they disagree about who leads.
 *
 * A candidate record is JSON `{id, address, startedAt}` written by a coordinator replica.
 *
 * A malformed record (not JSON, no dialable HOST:PORT address, a key outside the prefix, a
 * create revision that is not a decimal number) is NOT a candidate: it is skipped, reported
 * in `skipped` for the caller to log, and the leader is the lowest well-formed candidate.
 * Why skip rather than "no leader while the lowest record is bad": the election that fences
 * writes has always skipped such records, so the next candidate believes it leads and
 * serves; a reader that answered "no leader" would refuse that real leader (the agent did),
 * and a live replica writing a record nobody can read would leave the cluster without a
 * leader for as long as its lease lives. Skipping is the one treatment under which every
 * reader agrees with the replica that actually holds the fence.
 */
import type { Keyspace } from './keyspace';

/** The JSON value every candidate writes under its election key. */
export interface CandidateRecord {
  id: string;
  /** HOST:PORT agents dial when this candidate leads. */
  address: string;
  /** ISO time the replica started; '' when the record does not say. */
  startedAt: string;
}

/** A well-formed candidate, as read from etcd. */
export interface ElectionCandidate extends CandidateRecord {
  key: string;
  /** etcd create revision of the candidate key (decimal text): identifies one term. */
  createRevision: string;
}

/** One election key as etcd returns it. */
export interface RawCandidate {
  key: string;
  createRevision: string;
  value: string;
}

export interface SkippedCandidate {
  key: string;
  problem: string;
}

export interface LeaderPick {
  /** The candidate with the lowest create revision; undefined when there is none. */
  leader?: ElectionCandidate;
  /** Every well-formed candidate, lowest create revision first (so `candidates[0]` leads). */
  candidates: ElectionCandidate[];
  /** Malformed records that were not counted as candidates (log them). */
  skipped: SkippedCandidate[];
}

const HOST_PORT = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/;

/** Whether `address` has the HOST:PORT shape an agent can dial (IPv6 in brackets). */
export function isHostPort(address: string): boolean {
  return HOST_PORT.test(address);
}

/**
 * Decodes one election key. Returns the candidate, or a problem (a sentence) when the record
 * is malformed. A missing or empty `id` falls back to the key's last segment (the replica id
 * the key was created for); a missing `startedAt` becomes ''.
 */
export function decodeCandidate(raw: RawCandidate, keyspace: Keyspace): ElectionCandidate | { problem: string } {
  const keyId = keyspace.parseElectionCandidate(raw.key);
  if (keyId === undefined) return { problem: `${raw.key} is not an election key` };
  if (!/^\d+$/.test(raw.createRevision)) return { problem: `election record ${raw.key} has create revision ${JSON.stringify(raw.createRevision)}, not a number` };
  let value: unknown;
  try {
    value = JSON.parse(raw.value);
  } catch {
    return { problem: `election record ${raw.key} is not JSON` };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { problem: `election record ${raw.key} is not a JSON object` };
  const r = value as { id?: unknown; address?: unknown; startedAt?: unknown };
  if (typeof r.address !== 'string' || !isHostPort(r.address)) return { problem: `election record ${raw.key} has no valid "address" (HOST:PORT)` };
  return {
    key: raw.key,
    createRevision: raw.createRevision,
    id: typeof r.id === 'string' && r.id !== '' ? r.id : keyId,
    address: r.address,
    startedAt: typeof r.startedAt === 'string' ? r.startedAt : '',
  };
}

/** Applies the election rule to the keys under the election prefix (in any order). */
export function pickLeader(raws: readonly RawCandidate[], keyspace: Keyspace): LeaderPick {
  const candidates: ElectionCandidate[] = [];
  const skipped: SkippedCandidate[] = [];
  for (const raw of raws) {
    const c = decodeCandidate(raw, keyspace);
    if ('problem' in c) skipped.push({ key: raw.key, problem: c.problem });
    else candidates.push(c);
  }
  // BigInt: revisions are int64 and may pass 2^53; compared as numbers, not as text.
  candidates.sort((a, b) => {
    const x = BigInt(a.createRevision);
    const y = BigInt(b.createRevision);
    return x < y ? -1 : x > y ? 1 : 0;
  });
  return { ...(candidates[0] ? { leader: candidates[0] } : {}), candidates, skipped };
}
