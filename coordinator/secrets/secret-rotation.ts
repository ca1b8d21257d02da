/**
 * `clusterctl secrets rotate-key`: a new data-encryption key becomes active, every envelope
 * under an older key is re-encrypted under it, and the older keys are dropped once a second
 * scan finds none left (docs/secrets.md, "Key rotation").
 *
 * Envelopes sit in records of many kinds (group and job variables, node records' applied
 * inputs, files, named secrets), so the scan reads the whole cluster prefix a page at a time,
 * except pki/ (the keyring itself). Each rewritten key is its own transaction that compares the
 * key's mod revision, so a concurrent write is never overwritten: the key is read again and
 * re-encrypted again. Old keys stay in the keyring until nothing uses them, so every value
 * decrypts at every moment of a rotation, and a rotation cut short (its deadline, a replica
 * dying) is finished by running it again.
 */
import type { Etcd3 } from 'etcd3';
import { ConflictError, type Keyspace } from '../../shared';
import { ENVELOPE_PATTERN, isEnvelope, open, parseEnvelope, seal } from '../../shared/secret-envelope';
import { readKeys, runTxn } from '../etcd-txn';
import type { EventLog } from '../event-log';
import type { SecretKeyring, DataKey } from './secret-keyring';

const PAGE = 200;
const ATTEMPTS = 5;

export interface RotationReport {
  oldKeyIds: string[];
  newKeyId: string;
  keysRewritten: number;
  valuesReencrypted: number;
  keysDropped: number;
  /** Envelopes still under an old key after the pass (then the old keys are kept). */
  remaining: number;
}

export interface SecretRotationOptions {
  client: Etcd3;
  keyspace: Keyspace;
  keyring: SecretKeyring;
  events: EventLog;
}

/** Keys whose value is binary content: only a value that is wholly one envelope is a secret there. */
function isContentKey(keyspace: Keyspace, key: string): boolean {
  return key.startsWith(keyspace.filesPrefix()) || key.startsWith(keyspace.fileEditionsPrefix());
}

/** The range end of a prefix: the prefix with its last byte incremented. */
function rangeEnd(prefix: string): Buffer {
  const b = Buffer.from(prefix);
  b[b.length - 1] += 1;
  return b;
}

export class SecretRotation {
  constructor(private readonly o: SecretRotationOptions) {}

  /** Every (key, value) under the cluster prefix except pki/, a page at a time. */
  private async *scan(): AsyncGenerator<{ key: string; value: Buffer }> {
    const ks = this.o.keyspace;
    const end = rangeEnd(ks.prefix);
    let from = Buffer.from(ks.prefix);
    const pki = `${ks.prefix}pki/`;
    for (;;) {
      const res = await this.o.client.kv.range({ key: from, range_end: end, limit: PAGE });
      for (const kv of res.kvs) {
        const key = kv.key.toString();
        if (!key.startsWith(pki)) yield { key, value: kv.value };
      }
      if (!res.more || res.kvs.length === 0) return;
      from = Buffer.concat([res.kvs[res.kvs.length - 1].key, Buffer.from([0])]);
    }
  }

  /** Envelopes in `text` that `active` did not seal (whole value only, for content keys). */
  private stale(key: string, text: string, activeId: string): string[] {
    if (!text.includes('secret:v1:')) return [];
    const found = isContentKey(this.o.keyspace, key) ? (isEnvelope(text) ? [text] : []) : text.match(ENVELOPE_PATTERN) ?? [];
    return found.filter((e) => parseEnvelope(e)?.keyId !== activeId);
  }

  async rotate(actor: string): Promise<RotationReport> {
    const ring = await this.o.keyring.load();
    const fresh = this.o.keyring.newKey();
    const oldKeyIds = ring.record.keys.map((k) => k.id);
    if (!(await this.o.keyring.replace({ active: fresh.id, keys: [...ring.record.keys, fresh] }, ring.modRevision))) {
      throw new ConflictError('the secrets keyring changed while the rotation started (another rotation?); run it again');
    }
    const now = await this.o.keyring.load();
    const active: DataKey = now.active;
    let keysRewritten = 0;
    let valuesReencrypted = 0;
    for await (const { key, value } of this.scan()) {
      if (this.stale(key, value.toString(), active.id).length === 0) continue;
      const n = await this.reencryptKey(key, now.keys, active);
      if (n > 0) { keysRewritten++; valuesReencrypted += n; }
    }
    let remaining = 0;
    for await (const { key, value } of this.scan()) remaining += this.stale(key, value.toString(), active.id).length;
    let keysDropped = 0;
    if (remaining === 0) {
      const after = await this.o.keyring.load();
      const kept = after.record.keys.filter((k) => k.id === after.record.active);
      if (await this.o.keyring.replace({ active: after.record.active, keys: kept }, after.modRevision)) keysDropped = after.record.keys.length - kept.length;
    }
    await this.o.events.commit({
      compares: [],
      ops: [],
      event: {
        type: 'secrets.key-rotated',
        message: `secrets key rotated: ${oldKeyIds.join(', ') || '(none)'} → ${active.id}; ${valuesReencrypted} value(s) in ${keysRewritten} key(s) re-encrypted; ` +
          (remaining === 0 ? `${keysDropped} old key(s) dropped` : `${remaining} value(s) still under an old key, old keys kept (run it again)`),
        actor,
      },
    });
    return { oldKeyIds, newKeyId: active.id, keysRewritten, valuesReencrypted, keysDropped, remaining };
  }

  /** Re-encrypts every stale envelope of one key under `active`, compare-and-swap on its mod revision. */
  private async reencryptKey(key: string, keys: Map<string, Buffer>, active: DataKey): Promise<number> {
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      const { kvs } = await readKeys(this.o.client, [key]);
      const kv = kvs[0];
      if (!kv) return 0;
      const text = kv.value.toString();
      const stale = new Set(this.stale(key, text, active.id));
      if (stale.size === 0) return 0;
      let count = 0;
      const reseal = (env: string): string => {
        if (!stale.has(env)) return env;
        const parts = parseEnvelope(env);
        const old = parts ? keys.get(parts.keyId) : undefined;
        // An envelope under a key this keyring never held is left alone (and keeps the old keys).
        if (!parts || !old) return env;
        count++;
        return seal(active, parts.fingerprint, open(parts, old));
      };
      const next = isContentKey(this.o.keyspace, key) ? reseal(text) : text.replace(ENVELOPE_PATTERN, reseal);
      if (count === 0) return 0;
      const out = await runTxn(this.o.client, [{ key, target: 'Mod', op: '==', value: kv.mod_revision, reason: 'cas' }], [{ kind: 'put', key, value: next, ...(kv.lease && kv.lease !== '0' ? { lease: kv.lease } : {}) }]);
      if (out.succeeded) return count;
    }
    throw new ConflictError(`${key} kept changing while its secrets were re-encrypted; run the rotation again`);
  }
}
