/**
 * The data-encryption keys of secret values (docs/secrets.md). They live in etcd at
 * pki/secrets-keyring, each key wrapped (AES-256-GCM) under a key derived from the cluster
 * secret, exactly as the CA key is: every replica is given the cluster secret file, so every
 * replica can unwrap them, and a rotation made through one replica reaches all of them at once
 * (a key file per replica would have to be copied to every replica before any of them could
 * read a value encrypted under a new key). Whoever holds etcd's data alone reads no secret.
 *
 * Encrypting reads the keyring from etcd every time (secrets are written rarely), so a value is
 * never sealed under a key a concurrent rotation already retired; decrypting uses the keys in
 * memory and reloads once when an envelope names a key it does not know.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import type { Etcd3 } from 'etcd3';
import { FailedPreconditionError, InternalError, InvalidArgumentError, UnavailableError, type Clock, type Keyspace } from '../../shared';
import { DATA_KEY_BYTES, fingerprint, open, parseEnvelope, seal } from '../../shared/secret-envelope';
import { readKeys, runTxn, type Compare } from '../etcd-txn';

const WRAP_INFO = 'secrets-data-key/v1';
const FINGERPRINT_INFO = 'secrets-fingerprint/v1';

/** One key of the stored keyring: the data key wrapped under the cluster secret. */
export interface StoredDataKey {
  id: string;
  createdAt: string;
  /** base64: 12-byte nonce, then the wrapped key and its 16-byte tag. */
  wrapped: string;
}

/** pki/secrets-keyring. */
export interface KeyringRecord {
  active: string;
  keys: StoredDataKey[];
}

export interface DataKey {
  id: string;
  key: Buffer;
}

export interface LoadedKeyring {
  active: DataKey;
  keys: Map<string, Buffer>;
  record: KeyringRecord;
  /** Mod revision of pki/secrets-keyring (a rotation's compare). */
  modRevision: string;
}

function wrappingKey(clusterSecret: Buffer, keyId: string): Buffer {
  return Buffer.from(hkdfSync('sha256', clusterSecret, Buffer.from(keyId), WRAP_INFO, 32));
}

export function wrapDataKey(clusterSecret: Buffer, id: string, key: Buffer): string {
  const nonce = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', wrappingKey(clusterSecret, id), nonce);
  cipher.setAAD(Buffer.from(id));
  return Buffer.concat([nonce, cipher.update(key), cipher.final(), cipher.getAuthTag()]).toString('base64');
}

export function unwrapDataKey(clusterSecret: Buffer, stored: StoredDataKey): Buffer {
  const raw = Buffer.from(stored.wrapped, 'base64');
  try {
    const decipher = createDecipheriv('aes-256-gcm', wrappingKey(clusterSecret, stored.id), raw.subarray(0, 12));
    decipher.setAAD(Buffer.from(stored.id));
    decipher.setAuthTag(raw.subarray(raw.length - 16));
    return Buffer.concat([decipher.update(raw.subarray(12, raw.length - 16)), decipher.final()]);
  } catch (err) {
    throw new FailedPreconditionError(
      `cannot unwrap secrets key ${stored.id}: this replica's cluster secret differs from the one the keyring was made with (give every replica the first one's --cluster-secret-file)`,
      { cause: err },
    );
  }
}

export function newKeyId(): string {
  return randomBytes(4).toString('hex');
}

export function decodeKeyring(text: string): KeyringRecord {
  let o: Partial<KeyringRecord>;
  try {
    o = JSON.parse(text) as Partial<KeyringRecord>;
  } catch (err) {
    throw new InternalError('pki/secrets-keyring is not JSON', { cause: err });
  }
  if (typeof o.active !== 'string' || !Array.isArray(o.keys)) throw new InternalError('pki/secrets-keyring has no active key');
  return { active: o.active, keys: o.keys };
}

export interface SecretKeyringOptions {
  client: Etcd3;
  keyspace: Keyspace;
  clock: Clock;
}

export class SecretKeyring {
  private clusterSecret?: Buffer;
  private cached?: LoadedKeyring;

  constructor(private readonly o: SecretKeyringOptions) {}

  /** Given at start, once the cluster secret file is read (coordinator.ts). */
  setClusterSecret(secret: Buffer): void {
    this.clusterSecret = secret;
  }

  private secret(): Buffer {
    if (!this.clusterSecret) throw new UnavailableError('this coordinator is still loading the cluster secret; retry');
    return this.clusterSecret;
  }

  /** HMAC key of fingerprints: derived from the cluster secret, so it survives key rotation. */
  fingerprintOf(cleartext: Buffer): string {
    return fingerprint(Buffer.from(hkdfSync('sha256', this.secret(), Buffer.alloc(0), FINGERPRINT_INFO, 32)), cleartext);
  }

  /** The keyring as stored now; created (one active key) when the cluster has none. */
  async load(): Promise<LoadedKeyring> {
    const key = this.o.keyspace.pkiSecretsKeyring();
    for (let attempt = 0; attempt < 5; attempt++) {
      const { kvs } = await readKeys(this.o.client, [key]);
      const kv = kvs[0];
      if (kv) {
        this.cached = this.unwrap(decodeKeyring(kv.value.toString()), kv.mod_revision);
        return this.cached;
      }
      const id = newKeyId();
      const record: KeyringRecord = { active: id, keys: [{ id, createdAt: this.o.clock.iso(), wrapped: wrapDataKey(this.secret(), id, randomBytes(DATA_KEY_BYTES)) }] };
      // Of replicas racing to make the first keyring, one wins; the others read it.
      await runTxn(this.o.client, [{ key, target: 'Create', op: '==', value: '0', reason: 'no keyring yet' }], [{ kind: 'put', key, value: JSON.stringify(record) }]);
    }
    throw new UnavailableError('the secrets keyring kept changing while it was read; retry');
  }

  private unwrap(record: KeyringRecord, modRevision: string): LoadedKeyring {
    const keys = new Map<string, Buffer>();
    for (const k of record.keys) keys.set(k.id, unwrapDataKey(this.secret(), k));
    const active = keys.get(record.active);
    if (!active) throw new InternalError(`pki/secrets-keyring names active key ${record.active}, which it does not hold`);
    return { active: { id: record.active, key: active }, keys, record, modRevision };
  }

  /** Seals `cleartext` under the active key as stored in etcd now. */
  async encrypt(cleartext: Buffer | string): Promise<string> {
    const bytes = typeof cleartext === 'string' ? Buffer.from(cleartext) : cleartext;
    const ring = await this.load();
    return seal(ring.active, this.fingerprintOf(bytes), bytes);
  }

  /** Opens an envelope; InvalidArgumentError when the text is not one. */
  async decrypt(envelope: string): Promise<Buffer> {
    const parts = parseEnvelope(envelope);
    if (!parts) throw new InvalidArgumentError('not a secret envelope');
    let key = this.cached?.keys.get(parts.keyId);
    if (!key) key = (await this.load()).keys.get(parts.keyId);
    if (!key) throw new FailedPreconditionError(`a secret value is encrypted with key ${parts.keyId}, which the keyring no longer holds`);
    try {
      return open(parts, key);
    } catch (err) {
      throw new FailedPreconditionError(`a secret value under key ${parts.keyId} does not decrypt (tampered with, or written by another cluster)`, { cause: err });
    }
  }

  /**
   * Replaces the stored keyring when it is still at `modRevision` (a rotation's steps);
   * false when another write came first.
   */
  async replace(record: KeyringRecord, modRevision: string): Promise<boolean> {
    const key = this.o.keyspace.pkiSecretsKeyring();
    const guard: Compare = { key, target: 'Mod', op: '==', value: modRevision, reason: 'keyring' };
    const out = await runTxn(this.o.client, [guard], [{ kind: 'put', key, value: JSON.stringify(record) }]);
    if (out.succeeded) this.cached = undefined;
    return out.succeeded;
  }

  /** A new data key, wrapped, for a rotation. */
  newKey(): StoredDataKey {
    const id = newKeyId();
    return { id, createdAt: this.o.clock.iso(), wrapped: wrapDataKey(this.secret(), id, randomBytes(DATA_KEY_BYTES)) };
  }
}
