/**
 * Join tokens in etcd (pki/tokens/<id>): create, list, revoke, and consume one use atomically.
 * Every refusal says what to do next; none echoes the secret.
 */
import type { Etcd3 } from 'etcd3';
import { systemClock, type Clock } from '../../shared/clock';
import { ConflictError, InvalidArgumentError, NotFoundError } from '../../shared/errors';
import type { Keyspace } from '../../shared/keyspace';
import { UnauthenticatedError } from '../../shared/pki/errors';
import { formatJoinToken, generateJoinToken, hashTokenSecret, isTokenId, parseJoinToken, tokenSecretMatches } from '../../shared/pki/join-token';
import { runTxn, type Compare, type TxnOp } from '../etcd-txn';
import { decodeTokenRecord, type TokenRecord } from './pki-records';

export const DEFAULT_TOKEN_TTL_MS = 24 * 60 * 60 * 1000;
/** Attempts of a compare-and-swap that lost to a concurrent use of the same token. */
const CAS_ATTEMPTS = 10;
const CREATE_HINT = 'create a new one with clusterctl token create';

export interface CreateTokenOptions {
  /** null: never expires. @default DEFAULT_TOKEN_TTL_MS (24 h) */
  ttlMs?: number | null;
  /** null: unlimited. @default null */
  uses?: number | null;
  /** @default '' */
  description?: string;
}

/** A token use read and checked, ready to be written back in the caller's transaction. */
export interface TokenUse {
  record: TokenRecord;
  /** Guard and write that consume the use; put them in one transaction with what the use buys. */
  compare: Compare;
  op: TxnOp;
}

export class TokenStore {
  constructor(
    private readonly etcd: Etcd3,
    private readonly keyspace: Keyspace,
    /** sha256 of this cluster's CA public key: what tokens carry. */
    private readonly caHash: string,
    private readonly clock: Clock = systemClock,
  ) {}

  /** Creates a token; the returned text is the only time the secret exists outside the holder. */
  async create(options: CreateTokenOptions = {}): Promise<{ token: string; record: TokenRecord }> {
    const ttl = options.ttlMs === undefined ? DEFAULT_TOKEN_TTL_MS : options.ttlMs;
    if (ttl !== null && !(Number.isFinite(ttl) && ttl > 0)) throw new InvalidArgumentError(`invalid token ttl ${ttl} ms: use a positive duration, e.g. --ttl 1h`);
    const uses = options.uses ?? null;
    if (uses !== null && !(Number.isInteger(uses) && uses > 0)) throw new InvalidArgumentError(`invalid token uses ${uses}: use a whole number of 1 or more`);
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const t = generateJoinToken(this.caHash);
      const now = this.clock.now();
      const record: TokenRecord = {
        id: t.id, hash: hashTokenSecret(t.secret), createdAt: new Date(now).toISOString(),
        expiresAt: ttl === null ? null : new Date(now + ttl).toISOString(), usesLeft: uses,
        description: options.description ?? '', revoked: false,
      };
      const key = this.keyspace.pkiToken(t.id);
      const out = await runTxn(this.etcd, [{ key, target: 'Create', op: '==', value: '0', reason: 'token id is new' }], [{ kind: 'put', key, value: JSON.stringify(record) }]);
      if (out.succeeded) return { token: formatJoinToken(t), record };
    }
    throw new ConflictError('could not allocate a free token id; try again');
  }

  async list(): Promise<TokenRecord[]> {
    const kvs = await this.etcd.getAll().prefix(this.keyspace.pkiTokensPrefix()).strings();
    return Object.values(kvs).map(decodeTokenRecord).sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
  }

  private key(id: string): string {
    if (!isTokenId(id)) throw new InvalidArgumentError(`invalid token id ${JSON.stringify(id)}: 6 characters of a-z 0-9 (the part after :: in the token)`);
    return this.keyspace.pkiToken(id);
  }

  async get(id: string): Promise<TokenRecord | undefined> {
    const text = await this.etcd.get(this.key(id)).string();
    return text === null ? undefined : decodeTokenRecord(text);
  }

  async revoke(id: string): Promise<TokenRecord> {
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const key = this.key(id);
      const kv = await this.etcd.get(key).exec();
      const cur = kv.kvs[0];
      if (!cur) throw new NotFoundError(`join token ${id} does not exist (clusterctl token list shows the ids)`);
      const record = { ...decodeTokenRecord(cur.value.toString()), revoked: true };
      const out = await runTxn(this.etcd, [{ key, target: 'Mod', op: '==', value: cur.mod_revision, reason: 'cas' }], [{ kind: 'put', key, value: JSON.stringify(record) }]);
      if (out.succeeded) return record;
    }
    throw new ConflictError(`join token ${id} changed while being revoked; try again`);
  }

  /**
   * Checks a presented token and prepares the write that uses it up by one. The caller commits
   * `compare` + `op` in the same transaction as what the token buys (an agent's certificate
   * record), so a token cannot be used more often than it allows, even by racing joins.
   */
  async prepareUse(tokenText: string): Promise<TokenUse> {
    const t = parseJoinToken(tokenText);
    if (t.caHash !== this.caHash) {
      throw new UnauthenticatedError(`join token ${t.id} pins CA ${t.caHash.slice(0, 16)}…, but this cluster's CA is ${this.caHash.slice(0, 16)}…: the token is for another cluster`);
    }
    const key = this.keyspace.pkiToken(t.id);
    const kv = (await this.etcd.get(key).exec()).kvs[0];
    const record = kv ? decodeTokenRecord(kv.value.toString()) : undefined;
    if (!kv || !record || !tokenSecretMatches(t.secret, record.hash)) {
      throw new UnauthenticatedError(`join token ${t.id} is unknown or its secret is wrong: ${CREATE_HINT}`);
    }
    if (record.revoked) throw new UnauthenticatedError(`join token ${t.id} was revoked: ${CREATE_HINT}`);
    if (record.expiresAt !== null && this.clock.now() >= Date.parse(record.expiresAt)) {
      throw new UnauthenticatedError(`join token ${t.id} expired at ${record.expiresAt}: ${CREATE_HINT}`);
    }
    if (record.usesLeft !== null && record.usesLeft <= 0) {
      throw new UnauthenticatedError(`join token ${t.id} is used up: ${CREATE_HINT} [--uses N]`);
    }
    const next: TokenRecord = { ...record, usesLeft: record.usesLeft === null ? null : record.usesLeft - 1 };
    return {
      record: next,
      compare: { key, target: 'Mod', op: '==', value: kv.mod_revision, reason: `join token ${t.id}` },
      op: { kind: 'put', key, value: JSON.stringify(next) },
    };
  }

  /** Uses a token once on its own (a transaction of its own); retries a lost race. */
  async consume(tokenText: string): Promise<TokenRecord> {
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const use = await this.prepareUse(tokenText);
      const out = await runTxn(this.etcd, [use.compare], [use.op]);
      if (out.succeeded) return use.record;
    }
    throw new ConflictError('the join token is being used by many joins at once; try again');
  }
}
