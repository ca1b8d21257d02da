/**
 * Secret values at rest (docs/secrets.md): AES-256-GCM envelopes, the fingerprint that lets
 * desired and applied secrets be compared without decrypting them, and the redactor that keeps
 * a secret's bytes out of logs, events, job records and errors. Pure: the keys come from the
 * coordinator's keyring (coordinator/secrets/secret-keyring.ts).
 *
 * An envelope is one ASCII string, so it can sit in any JSON record (group variables, job
 * records, node records) or be the whole value of a key (files/, secrets/):
 *
 *     secret:v1:<key id>:<fingerprint>:<nonce>:<ciphertext+tag>
 *
 * key id: 8 hex digits naming the keyring key that encrypted it (rotation re-encrypts every
 * envelope whose key id is not the active one); fingerprint: 16 hex digits of HMAC-SHA256 of
 * the cleartext under a key derived from the cluster secret (stable across rotations, so the
 * same secret compares equal; not a plain hash, which would let a viewer test guesses of a
 * short password); nonce: 12 random bytes; the GCM tag (16 bytes) follows the ciphertext. Both
 * base64url. The header up to the fingerprint is the GCM additional data, so a ciphertext
 * cannot be moved under another key id or fingerprint.
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';

export const ENVELOPE_PREFIX = 'secret:v1:';
/** Every envelope inside a text (records are JSON: the alphabet needs no escaping). */
export const ENVELOPE_PATTERN = /secret:v1:[0-9a-f]{8}:[0-9a-f]{16}:[A-Za-z0-9_-]+:[A-Za-z0-9_-]+/g;
const WHOLE = /^secret:v1:([0-9a-f]{8}):([0-9a-f]{16}):([A-Za-z0-9_-]+):([A-Za-z0-9_-]+)$/;

const NONCE_BYTES = 12;
const TAG_BYTES = 16;
export const DATA_KEY_BYTES = 32;

export interface EnvelopeParts {
  keyId: string;
  fingerprint: string;
  nonce: Buffer;
  /** Ciphertext followed by the 16-byte tag. */
  sealed: Buffer;
}

export function isEnvelope(text: string): boolean {
  return WHOLE.test(text);
}

export function parseEnvelope(text: string): EnvelopeParts | undefined {
  const m = WHOLE.exec(text);
  if (!m) return undefined;
  return { keyId: m[1], fingerprint: m[2], nonce: Buffer.from(m[3], 'base64url'), sealed: Buffer.from(m[4], 'base64url') };
}

/** The fingerprint of a cleartext: HMAC-SHA256 under `fingerprintKey`, 16 hex digits. */
export function fingerprint(fingerprintKey: Buffer, cleartext: Buffer): string {
  return createHmac('sha256', fingerprintKey).update(cleartext).digest('hex').slice(0, 16);
}

function header(keyId: string, fp: string): string {
  return `${ENVELOPE_PREFIX}${keyId}:${fp}:`;
}

export function seal(key: { id: string; key: Buffer }, fp: string, cleartext: Buffer): string {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key.key, nonce);
  cipher.setAAD(Buffer.from(header(key.id, fp)));
  const sealed = Buffer.concat([cipher.update(cleartext), cipher.final(), cipher.getAuthTag()]);
  return `${header(key.id, fp)}${nonce.toString('base64url')}:${sealed.toString('base64url')}`;
}

/** Decrypts with the key the envelope names; throws when the tag does not verify. */
export function open(parts: EnvelopeParts, key: Buffer): Buffer {
  if (parts.sealed.length < TAG_BYTES) throw new Error('envelope too short');
  const decipher = createDecipheriv('aes-256-gcm', key, parts.nonce);
  decipher.setAAD(Buffer.from(header(parts.keyId, parts.fingerprint)));
  decipher.setAuthTag(parts.sealed.subarray(parts.sealed.length - TAG_BYTES));
  return Buffer.concat([decipher.update(parts.sealed.subarray(0, parts.sealed.length - TAG_BYTES)), decipher.final()]);
}

/**
 * How a value compares with another without its cleartext: an envelope by its fingerprint, any
 * other value as itself. Desired and applied inputs compare equal across re-encryption.
 */
export function comparable(value: string | undefined): string | undefined {
  const p = value === undefined ? undefined : parseEnvelope(value);
  return p ? `${ENVELOPE_PREFIX}${p.fingerprint}` : value;
}

/** What an operator sees in place of a secret value. */
export const REDACTED = '[secret]';

/**
 * Values shorter than this are refused as secrets: redacting a 1-3 character value would cut
 * every occurrence of those characters out of all output.
 */
export const MIN_SECRET_BYTES = 4;

/**
 * Replaces every occurrence of the given secret values (and of their base64 forms, which is how
 * a secret often reappears in a config file or an error) with REDACTED. Built once per command
 * from the values it carries; applied on the agent to everything it sends back and logs, and on
 * the coordinator to the agent's messages before they are logged, evented or recorded.
 */
export class Redactor {
  private readonly needles: string[];

  constructor(values: Iterable<string | Buffer>) {
    const set = new Set<string>();
    for (const v of values) {
      const text = typeof v === 'string' ? v : v.toString('utf8');
      const bytes = typeof v === 'string' ? Buffer.from(v) : v;
      if (bytes.length < MIN_SECRET_BYTES) continue;
      set.add(text);
      set.add(bytes.toString('base64'));
      set.add(bytes.toString('base64').replace(/=+$/, ''));
      // A multi-line secret (a key, a certificate) leaks line by line just as well.
      for (const line of text.split('\n')) if (line.trim().length >= 8) set.add(line.trim());
    }
    // Longest first, so a value containing another is replaced whole.
    this.needles = [...set].filter((n) => n.length >= MIN_SECRET_BYTES).sort((a, b) => b.length - a.length);
  }

  get empty(): boolean {
    return this.needles.length === 0;
  }

  redact(text: string): string {
    if (this.needles.length === 0 || !text) return text;
    let out = text;
    for (const n of this.needles) if (out.includes(n)) out = out.split(n).join(REDACTED);
    return out;
  }

  /** Every string inside `value` (objects, arrays) redacted; other values as they are. */
  redactDeep<T>(value: T): T {
    if (this.needles.length === 0) return value;
    return this.walk(value) as T;
  }

  private walk(v: unknown): unknown {
    if (typeof v === 'string') return this.redact(v);
    if (Array.isArray(v)) return v.map((x) => this.walk(x));
    if (v && typeof v === 'object' && !Buffer.isBuffer(v)) {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) out[k] = this.walk(x);
      return out;
    }
    return v;
  }
}

/**
 * The content of the bundle's file units marked `secret: true` (the leader marks every unit that
 * delivers a secret). Parsed only when the text can hold one: most commands carry none.
 */
function secretContents(bundleJson: string | undefined | null): string[] {
  if (!bundleJson || !bundleJson.includes('"secret":true')) return [];
  try {
    const b = JSON.parse(bundleJson) as { units?: unknown };
    if (!Array.isArray(b.units)) return [];
    return b.units
      .filter((u): u is { content: string } => !!u && typeof u === 'object' && (u as { secret?: unknown }).secret === true && typeof (u as { content?: unknown }).content === 'string')
      .map((u) => u.content);
  } catch {
    return []; // the executor refuses it and says why
  }
}

/** The redactor of a command: the values of its secret variables and the bundle's secret contents. */
export function commandRedactor(cmd: { variables?: Record<string, string> | null; secretVariables?: readonly string[] | null; bundleJson?: string | null }): Redactor {
  const vars = cmd.variables ?? {};
  const values = (cmd.secretVariables ?? []).map((n) => (Object.hasOwn(vars, n) ? vars[n] : undefined)).filter((v): v is string => typeof v === 'string');
  return new Redactor([...values, ...secretContents(cmd.bundleJson)]);
}
