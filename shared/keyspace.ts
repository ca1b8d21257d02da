/**
 * The etcd keyspace: every key the system reads or writes is built and parsed here and
 * nowhere else (fleet's `prefixed()`, etcd3's `Election.prefix`). See ../../shared/DESIGN.md.
 *
 * All keys live under one prefix (default `/cluster/v1/`) so several clusters, or several
 * test suites, can share one etcd.
 */
import { InvalidArgumentError } from './errors';

export const DEFAULT_PREFIX = '/cluster/v1/';

/** Node, bundle, group, file and job names: what may appear as one key segment. */
const SEGMENT = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,252}$/;

export function isValidSegment(s: string): boolean {
  return SEGMENT.test(s);
}

function segment(kind: string, s: string): string {
  if (!SEGMENT.test(s)) {
    throw new InvalidArgumentError(
      `invalid ${kind} ${JSON.stringify(s)}: use 1-253 characters from A-Z a-z 0-9 . _ : - starting with a letter or digit`,
    );
  }
  return s;
}

/** A certificate serial as a key segment: lower-case hex, no leading zero, at most 20 bytes (RFC 5280). */
const SERIAL = /^[1-9a-f][0-9a-f]{0,39}$/;

function hexSerial(s: string): string {
  if (!SERIAL.test(s)) throw new InvalidArgumentError(`invalid certificate serial ${JSON.stringify(s)}: use lower-case hex without leading zeros`);
  return s;
}

/** A content digest as a key segment: lower-case hex sha256. */
const SHA256 = /^[0-9a-f]{64}$/;

function contentDigest(s: string): string {
  if (!SHA256.test(s)) throw new InvalidArgumentError(`invalid content digest ${JSON.stringify(s)}: use the lower-case hex sha256`);
  return s;
}

/** Width of the zero-padded event sequence, so lexical order is numeric order. */
const SEQ_WIDTH = 16;

/** A parsed history key (history/ or history-facts/). */
export interface HistoryKey {
  nodeId: string;
  seq: number;
  atMs: number;
}

const MS_WIDTH = 13;

function historyLeaf(seq: number, atMs: number): string {
  if (!Number.isSafeInteger(seq) || seq < 0) throw new InvalidArgumentError(`invalid event sequence ${seq}`);
  if (!Number.isSafeInteger(atMs) || atMs < 0) throw new InvalidArgumentError(`invalid history time ${atMs}`);
  return `${String(seq).padStart(SEQ_WIDTH, '0')}-${String(atMs).padStart(MS_WIDTH, '0')}`;
}

function parseHistoryRest(rest: string | undefined): HistoryKey | undefined {
  const m = rest === undefined ? null : /^([^/]+)\/(\d{16})-(\d{13})$/.exec(rest);
  if (!m || !isValidSegment(m[1])) return undefined;
  const seq = Number(m[2]);
  const atMs = Number(m[3]);
  return Number.isSafeInteger(seq) && Number.isSafeInteger(atMs) ? { nodeId: m[1], seq, atMs } : undefined;
}

export class Keyspace {
  readonly prefix: string;

  constructor(prefix: string = DEFAULT_PREFIX) {
    if (!prefix.startsWith('/') || !prefix.endsWith('/')) {
      throw new InvalidArgumentError(`etcd prefix ${JSON.stringify(prefix)} must start and end with "/"`);
    }
    this.prefix = prefix;
  }

  // --- members/<nodeId>: presence, bound to the agent's lease -------------------------
  membersPrefix(): string { return `${this.prefix}members/`; }
  member(nodeId: string): string { return `${this.membersPrefix()}${segment('node id', nodeId)}`; }
  parseMember(key: string): string | undefined { return this.parseLeaf(key, this.membersPrefix()); }

  // --- nodes/<nodeId>: the node record (coordinator, CAS) -----------------------------
  nodesPrefix(): string { return `${this.prefix}nodes/`; }
  node(nodeId: string): string { return `${this.nodesPrefix()}${segment('node id', nodeId)}`; }
  parseNode(key: string): string | undefined { return this.parseLeaf(key, this.nodesPrefix()); }

  // --- facts/<nodeId>: hardware facts (agent) -----------------------------------------
  factsPrefix(): string { return `${this.prefix}facts/`; }
  facts(nodeId: string): string { return `${this.factsPrefix()}${segment('node id', nodeId)}`; }
  parseFacts(key: string): string | undefined { return this.parseLeaf(key, this.factsPrefix()); }

  // --- configs/<bundle>/<version>: immutable bundles ----------------------------------
  configsPrefix(): string { return `${this.prefix}configs/`; }
  configVersionsPrefix(bundle: string): string { return `${this.configsPrefix()}${segment('bundle name', bundle)}/`; }
  config(bundle: string, version: string): string {
    return `${this.configVersionsPrefix(bundle)}${segment('bundle version', version)}`;
  }
  parseConfig(key: string): { bundle: string; version: string } | undefined {
    const rest = this.strip(key, this.configsPrefix());
    const parts = rest?.split('/');
    if (!parts || parts.length !== 2 || !parts.every(isValidSegment)) return undefined;
    return { bundle: parts[0], version: parts[1] };
  }

  /**
   * config-info/<bundle>/<version>: when a bundle version was pushed and its digest. Kept apart
   * from configs/ so the stored value there is exactly the Bundle JSON agents receive.
   */
  configInfoPrefix(): string { return `${this.prefix}config-info/`; }
  configInfo(bundle: string, version: string): string {
    return `${this.configInfoPrefix()}${segment('bundle name', bundle)}/${segment('bundle version', version)}`;
  }
  parseConfigInfo(key: string): { bundle: string; version: string } | undefined {
    const parts = this.strip(key, this.configInfoPrefix())?.split('/');
    if (!parts || parts.length !== 2 || !parts.every(isValidSegment)) return undefined;
    return { bundle: parts[0], version: parts[1] };
  }

  // --- groups/<group> -------------------------------------------------------------------
  groupsPrefix(): string { return `${this.prefix}groups/`; }
  group(name: string): string { return `${this.groupsPrefix()}${segment('group name', name)}`; }
  parseGroup(key: string): string | undefined { return this.parseLeaf(key, this.groupsPrefix()); }

  // --- jobs/<jobId>, jobs/<jobId>/nodes/<nodeId> -----------------------------------------
  jobsPrefix(): string { return `${this.prefix}jobs/`; }
  job(jobId: string): string { return `${this.jobsPrefix()}${segment('job id', jobId)}`; }
  jobNodesPrefix(jobId: string): string { return `${this.job(jobId)}/nodes/`; }
  jobNode(jobId: string, nodeId: string): string { return `${this.jobNodesPrefix(jobId)}${segment('node id', nodeId)}`; }
  parseJobKey(key: string): { jobId: string; nodeId?: string } | undefined {
    const rest = this.strip(key, this.jobsPrefix());
    if (rest === undefined) return undefined;
    const parts = rest.split('/');
    if (parts.length === 1 && isValidSegment(parts[0])) return { jobId: parts[0] };
    if (parts.length === 3 && parts[1] === 'nodes' && isValidSegment(parts[0]) && isValidSegment(parts[2])) {
      return { jobId: parts[0], nodeId: parts[2] };
    }
    return undefined;
  }

  /** Whether `key` is a job's per-node record (jobs/<id>/nodes/<node>), not the job's own. */
  isJobNodeKey(key: string): boolean {
    return key.startsWith(this.jobsPrefix()) && this.parseJobKey(key)?.nodeId !== undefined;
  }

  // --- files/<name> ----------------------------------------------------------------------
  filesPrefix(): string { return `${this.prefix}files/`; }
  file(name: string): string { return `${this.filesPrefix()}${segment('file name', name)}`; }
  parseFile(key: string): string | undefined { return this.parseLeaf(key, this.filesPrefix()); }
  /**
   * file-info/<name>: size, sha256, mode and upload time of files/<name>. Kept apart so the value
   * at files/ is exactly the uploaded bytes (nothing to escape, so 1 MiB stays 1 MiB in etcd).
   */
  fileInfoPrefix(): string { return `${this.prefix}file-info/`; }
  fileInfo(name: string): string { return `${this.fileInfoPrefix()}${segment('file name', name)}`; }
  parseFileInfo(key: string): string | undefined { return this.parseLeaf(key, this.fileInfoPrefix()); }

  /**
   * file-editions/<name>/<sha256>: every uploaded edition's bytes, immutable (the key is the
   * content's hex sha256), and file-edition-info/<name>/<sha256> its size, mode and upload time.
   * files/<name> holds the current edition (what the next bundle push pins); a bundle version
   * pins the edition it was pushed with in config-info/, so later uploads never change it.
   */
  fileEditionsPrefix(name?: string): string {
    return `${this.prefix}file-editions/${name === undefined ? '' : `${segment('file name', name)}/`}`;
  }
  fileEdition(name: string, sha256: string): string { return `${this.fileEditionsPrefix(name)}${contentDigest(sha256)}`; }
  fileEditionInfoPrefix(name?: string): string {
    return `${this.prefix}file-edition-info/${name === undefined ? '' : `${segment('file name', name)}/`}`;
  }
  fileEditionInfo(name: string, sha256: string): string { return `${this.fileEditionInfoPrefix(name)}${contentDigest(sha256)}`; }
  /** file-editions/ or file-edition-info/ key → name and sha256. */
  parseFileEdition(key: string): { name: string; sha256: string } | undefined {
    const rest = this.strip(key, this.fileEditionsPrefix()) ?? this.strip(key, this.fileEditionInfoPrefix());
    const parts = rest?.split('/');
    if (!parts || parts.length !== 2 || !isValidSegment(parts[0]) || !SHA256.test(parts[1])) return undefined;
    return { name: parts[0], sha256: parts[1] };
  }

  // --- globals: cluster-wide template variables (`clusterctl global set`) ------------------
  /** One record: variables merged over every bundle's defaults and under every group's variables. */
  globals(): string { return `${this.prefix}globals`; }

  // --- manager-config: the manager's own settings (`clusterctl config set`) ----------------
  managerConfig(): string { return `${this.prefix}manager-config`; }

  // --- idempotency/<sha256>: the first result of a write request, bound to a lease ----------
  idempotencyPrefix(): string { return `${this.prefix}idempotency/`; }
  /** `digest`: sha256 (hex) of the caller's identity and the request's idempotency key. */
  idempotency(digest: string): string { return `${this.idempotencyPrefix()}${contentDigest(digest)}`; }

  // --- meta/last-applied: the cluster file `clusterctl apply` last applied ------------------
  lastApplied(): string { return `${this.prefix}meta/last-applied`; }

  // --- history/<nodeId>/<seq>-<ms>, history-facts/<nodeId>/<seq>-<ms> ------------------------
  /**
   * A node's history: one key per change of its record, written in the change's own
   * transaction (event-log.ts), named by the change's event sequence and its time in epoch ms.
   * Both are in the key so that retention (history-retention.ts) decides from a keys-only read.
   * history-facts/ holds the full facts the leader saw when the record's facts digest changed,
   * kept apart so that listing a node's history does not read them.
   */
  historyPrefix(nodeId?: string): string { return `${this.prefix}history/${nodeId === undefined ? '' : `${segment('node id', nodeId)}/`}`; }
  historyFactsPrefix(nodeId?: string): string { return `${this.prefix}history-facts/${nodeId === undefined ? '' : `${segment('node id', nodeId)}/`}`; }
  history(nodeId: string, seq: number, atMs: number): string { return `${this.historyPrefix(nodeId)}${historyLeaf(seq, atMs)}`; }
  historyFacts(nodeId: string, seq: number, atMs: number): string { return `${this.historyFactsPrefix(nodeId)}${historyLeaf(seq, atMs)}`; }
  parseHistory(key: string): HistoryKey | undefined { return parseHistoryRest(this.strip(key, this.historyPrefix())); }
  parseHistoryFacts(key: string): HistoryKey | undefined { return parseHistoryRest(this.strip(key, this.historyFactsPrefix())); }

  // --- events/<seq> -----------------------------------------------------------------------
  eventsPrefix(): string { return `${this.prefix}events/`; }
  /** The counter that allocates event sequence numbers (incremented in the same txn). */
  eventSeq(): string { return `${this.prefix}meta/event-seq`; }
  event(seq: number): string {
    if (!Number.isSafeInteger(seq) || seq < 0) throw new InvalidArgumentError(`invalid event sequence ${seq}`);
    return `${this.eventsPrefix()}${String(seq).padStart(SEQ_WIDTH, '0')}`;
  }
  parseEvent(key: string): number | undefined {
    const rest = this.strip(key, this.eventsPrefix());
    if (rest === undefined || !/^\d+$/.test(rest)) return undefined;
    return Number(rest);
  }

  // --- election/coordinator ---------------------------------------------------------------
  /**
   * Election candidates live under this prefix, one key per candidate bound to its lease;
   * the leader is the candidate with the lowest create revision.
   */
  electionPrefix(): string { return `${this.prefix}election/coordinator/`; }
  electionCandidate(candidateId: string): string { return `${this.electionPrefix()}${segment('candidate id', candidateId)}`; }
  parseElectionCandidate(key: string): string | undefined { return this.parseLeaf(key, this.electionPrefix()); }

  // --- pki/: the cluster CA, join tokens, users, issued and revoked certificates ------------
  /** pki/ca: the CA certificate and its key, encrypted under the cluster secret. */
  pkiCa(): string { return `${this.prefix}pki/ca`; }
  pkiTokensPrefix(): string { return `${this.prefix}pki/tokens/`; }
  pkiToken(tokenId: string): string { return `${this.pkiTokensPrefix()}${segment('token id', tokenId)}`; }
  parsePkiToken(key: string): string | undefined { return this.parseLeaf(key, this.pkiTokensPrefix()); }
  pkiUsersPrefix(): string { return `${this.prefix}pki/users/`; }
  pkiUser(name: string): string { return `${this.pkiUsersPrefix()}${segment('user name', name)}`; }
  parsePkiUser(key: string): string | undefined { return this.parseLeaf(key, this.pkiUsersPrefix()); }
  /** pki/agents/<nodeId>: the serials issued to a node, so `node revoke` can find them. */
  pkiAgentsPrefix(): string { return `${this.prefix}pki/agents/`; }
  pkiAgent(nodeId: string): string { return `${this.pkiAgentsPrefix()}${segment('node id', nodeId)}`; }
  parsePkiAgent(key: string): string | undefined { return this.parseLeaf(key, this.pkiAgentsPrefix()); }
  /** pki/revoked/<serial>: serial as lower-case hex without leading zeros. */
  pkiRevokedPrefix(): string { return `${this.prefix}pki/revoked/`; }
  pkiRevoked(serial: string): string { return `${this.pkiRevokedPrefix()}${hexSerial(serial)}`; }
  parsePkiRevoked(key: string): string | undefined {
    const rest = this.strip(key, this.pkiRevokedPrefix());
    return rest !== undefined && SERIAL.test(rest) ? rest : undefined;
  }

  /**
   * pki/secrets-keyring: the data-encryption keys of secret values (docs/secrets.md), each
   * wrapped under the cluster secret like the CA key, and which one is active.
   */
  pkiSecretsKeyring(): string { return `${this.prefix}pki/secrets-keyring`; }

  // --- secrets/<name>: named secret values (`clusterctl secret set`), e.g. secrets/registry/NAME
  secretsPrefix(): string { return `${this.prefix}secrets/`; }
  /** `name`: one segment, or "registry/NAME" (two). */
  secret(name: string): string {
    const parts = name.split('/');
    if (parts.length > 2) throw new InvalidArgumentError(`invalid secret name ${JSON.stringify(name)}: use NAME or registry/NAME`);
    return `${this.secretsPrefix()}${parts.map((p) => segment('secret name', p)).join('/')}`;
  }
  parseSecret(key: string): string | undefined {
    const rest = this.strip(key, this.secretsPrefix());
    if (rest === undefined) return undefined;
    const parts = rest.split('/');
    return parts.length <= 2 && parts.every(isValidSegment) ? rest : undefined;
  }

  // --- helpers ------------------------------------------------------------------------------
  private strip(key: string, prefix: string): string | undefined {
    return key.startsWith(prefix) ? key.slice(prefix.length) : undefined;
  }

  private parseLeaf(key: string, prefix: string): string | undefined {
    const rest = this.strip(key, prefix);
    return rest !== undefined && isValidSegment(rest) ? rest : undefined;
  }
}
