/**
 * Join tokens, k3s style: `K10<ca-hash>::<id>.<secret>`.
 *
 * The CA hash (sha256 of the CA's SubjectPublicKeyInfo) lets a joining agent pin the CA before
 * it sends anything secret; the id names the stored record; the secret is stored only as its
 * sha256 and compared in constant time.
 */
import { createHash, randomBytes, randomInt, timingSafeEqual } from 'node:crypto';
import { InvalidArgumentError } from '../errors';

export const TOKEN_PREFIX = 'K10';
const ID_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';
const ID_LENGTH = 6;
/** 16 random bytes, hex: 32 characters. */
const SECRET_BYTES = 16;
const FORMAT = /^K10([0-9a-f]{64})::([a-z0-9]{6})\.([0-9a-z]{16,128})$/;
const USAGE = 'not a join token: expected K10<ca hash>::<id>.<secret>';

export interface JoinToken {
  /** sha256 hex of the CA's SubjectPublicKeyInfo DER. */
  caHash: string;
  id: string;
  secret: string;
}

export function isTokenId(s: string): boolean {
  return /^[a-z0-9]{6}$/.test(s);
}

export function newTokenId(): string {
  let id = '';
  for (let i = 0; i < ID_LENGTH; i++) id += ID_ALPHABET[randomInt(ID_ALPHABET.length)];
  return id;
}

/** A fresh token for this CA (crypto random id and secret). */
export function generateJoinToken(caHash: string): JoinToken {
  return { caHash, id: newTokenId(), secret: randomBytes(SECRET_BYTES).toString('hex') };
}

export function formatJoinToken(t: JoinToken): string {
  const s = `${TOKEN_PREFIX}${t.caHash}::${t.id}.${t.secret}`;
  if (!FORMAT.test(s)) throw new InvalidArgumentError(`cannot format join token ${t.id}: the CA hash must be 64 hex digits, the id 6 of [a-z0-9], the secret 16+ of [a-z0-9]`);
  return s;
}

/** Parses a token as an operator pasted it (surrounding whitespace ignored); never echoes the secret. */
export function parseJoinToken(text: string): JoinToken {
  const m = FORMAT.exec(text.trim());
  if (!m) {
    const t = text.trim();
    if (!t.startsWith(TOKEN_PREFIX)) throw new InvalidArgumentError(USAGE);
    if (!/^K10[0-9a-f]{64}::/.test(t)) throw new InvalidArgumentError(`${USAGE} (the CA hash must be 64 lower-case hex digits)`);
    throw new InvalidArgumentError(`${USAGE} (the id must be 6 of [a-z0-9], the secret 16 or more of [a-z0-9])`);
  }
  return { caHash: m[1], id: m[2], secret: m[3] };
}

/** What the cluster stores instead of the secret. */
export function hashTokenSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** Whether `secret` hashes to `storedHash`, in constant time. */
export function tokenSecretMatches(secret: string, storedHash: string): boolean {
  const a = Buffer.from(hashTokenSecret(secret), 'hex');
  const b = Buffer.from(storedHash, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}
