/**
 * secrets/<name>: named secret values, e.g. a registry credential at secrets/registry/NAME
 * (Clusterlite's `login`): `{ "value": <envelope>, "updatedAt": ... }`. A bundle delivers one
 * with a file unit `source: secret:NAME` (coordinator/jobs/bundle-resolution.ts). The value is
 * never returned by any RPC and never put in an event.
 */
import type { Etcd3 } from 'etcd3';
import { InvalidArgumentError, NotFoundError, type Keyspace } from '../../shared';
import { MIN_SECRET_BYTES, parseEnvelope } from '../../shared/secret-envelope';
import { readKeys, readPrefixes } from '../etcd-txn';
import type { EventLog } from '../event-log';
import type { SecretKeyring } from './secret-keyring';
import type { Clock } from '../../shared';

/** The largest named secret: credentials, tokens, keys and certificates are far smaller. */
export const MAX_SECRET_BYTES = 64 * 1024;

/** A file unit `source` naming a named secret instead of a distributed file. */
export const SECRET_SOURCE_PREFIX = 'secret:';

const NAME = /^(?:registry\/)?[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

export interface SecretMeta {
  name: string;
  updatedAt: string;
  keyId: string;
}

interface SecretRecord {
  value: string;
  updatedAt: string;
}

export interface SecretStoreOptions {
  client: Etcd3;
  keyspace: Keyspace;
  events: EventLog;
  clock: Clock;
  keyring: SecretKeyring;
}

export function checkSecretName(name: string): string {
  if (!NAME.test(name)) throw new InvalidArgumentError('invalid secret name: use NAME or registry/NAME (letters, digits, . _ : -, at most 128)');
  return name;
}

/** Pure: the refusal of a secret value, or undefined (shared by files, variables and named secrets). */
export function secretValueProblem(what: string, size: number, max: number): string | undefined {
  if (size === 0) return `${what} is empty; a secret needs a value`;
  if (size < MIN_SECRET_BYTES) return `${what} is ${size} byte(s); a secret needs at least ${MIN_SECRET_BYTES} (a shorter one could not be redacted from output without cutting those characters out of everything)`;
  if (size > max) return `${what} is ${size} bytes; the limit is ${max}`;
  return undefined;
}

function decode(text: string): SecretRecord | undefined {
  try {
    const o = JSON.parse(text) as Partial<SecretRecord>;
    return typeof o.value === 'string' ? { value: o.value, updatedAt: typeof o.updatedAt === 'string' ? o.updatedAt : '' } : undefined;
  } catch {
    return undefined;
  }
}

/** The cleartext of secrets/<name>; undefined when there is no such secret. */
export async function revealSecret(client: Etcd3, keyspace: Keyspace, keyring: SecretKeyring, name: string): Promise<Buffer | undefined> {
  const { kvs } = await readKeys(client, [keyspace.secret(checkSecretName(name))]);
  const r = kvs[0] ? decode(kvs[0].value.toString()) : undefined;
  return r ? keyring.decrypt(r.value) : undefined;
}

export class SecretStore {
  constructor(private readonly o: SecretStoreOptions) {}

  async set(name: string, value: Buffer, actor: string): Promise<SecretMeta> {
    checkSecretName(name);
    const problem = secretValueProblem(`secret ${name}`, value.length, MAX_SECRET_BYTES);
    if (problem) throw new InvalidArgumentError(problem);
    const envelope = await this.o.keyring.encrypt(value);
    const record: SecretRecord = { value: envelope, updatedAt: this.o.clock.iso() };
    const key = this.o.keyspace.secret(name);
    await this.o.events.commit({
      compares: [],
      ops: [{ kind: 'put', key, value: JSON.stringify(record) }],
      event: { type: 'secret.set', message: `secret ${name} set`, actor },
    });
    return { name, updatedAt: record.updatedAt, keyId: parseEnvelope(envelope)?.keyId ?? '' };
  }

  async list(): Promise<SecretMeta[]> {
    const { kvs } = await readPrefixes(this.o.client, [{ prefix: this.o.keyspace.secretsPrefix() }]);
    const out: SecretMeta[] = [];
    for (const kv of kvs[0]) {
      const name = this.o.keyspace.parseSecret(kv.key.toString());
      const r = decode(kv.value.toString());
      if (name !== undefined && r) out.push({ name, updatedAt: r.updatedAt, keyId: parseEnvelope(r.value)?.keyId ?? '' });
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async delete(name: string, actor: string): Promise<SecretMeta> {
    checkSecretName(name);
    const key = this.o.keyspace.secret(name);
    const { kvs } = await readKeys(this.o.client, [key]);
    const kv = kvs[0];
    const r = kv ? decode(kv.value.toString()) : undefined;
    if (!kv || !r) throw new NotFoundError(`secret ${name} not found (list them with \`clusterctl secret list\`)`);
    await this.o.events.commit({
      compares: [{ key, target: 'Mod', op: '==', value: kv.mod_revision, reason: 'cas' }],
      ops: [{ kind: 'delete', key }],
      event: { type: 'secret.deleted', message: `secret ${name} deleted`, actor },
    });
    return { name, updatedAt: r.updatedAt, keyId: parseEnvelope(r.value)?.keyId ?? '' };
  }

  /** The cleartext (the leader, building a command); undefined when there is no such secret. */
  reveal(name: string): Promise<Buffer | undefined> {
    return revealSecret(this.o.client, this.o.keyspace, this.o.keyring, name);
  }
}
