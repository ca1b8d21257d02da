/**
 * The CA key at rest: AES-256-GCM under a key derived with HKDF-SHA256 from the cluster secret
 * file that every coordinator replica is given. The additional data binds the ciphertext to the
 * CA certificate, so an encrypted key cannot be paired with another certificate.
 */
import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { dirname } from 'node:path';
import { FailedPreconditionError, InvalidArgumentError } from '../errors';

const SECRET_BYTES = 32;
const HKDF_INFO = 'cluster-ca-key/v1';

/** The stored form of the encrypted CA key (base64 fields, JSON in etcd). */
export interface EncryptedKey {
  alg: 'aes-256-gcm';
  kdf: 'hkdf-sha256';
  salt: string;
  iv: string;
  tag: string;
  ciphertext: string;
}

/**
 * Reads the cluster secret (64 hex digits, or 32+ raw bytes), or creates it (32 random bytes
 * as hex, mode 0600) when the file is absent. Refuses a file that others can read.
 */
export async function loadOrCreateClusterSecret(path: string): Promise<{ secret: Buffer; created: boolean }> {
  let created = false;
  await fs.mkdir(dirname(path), { recursive: true, mode: 0o700 });
  // Written whole to a private temporary file, then linked into place: link() fails if the
  // file exists, so of two replicas starting together on one host exactly one creates it, and
  // the other never reads a half-written secret.
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await fs.writeFile(tmp, `${randomBytes(SECRET_BYTES).toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
  try {
    await fs.link(tmp, path);
    created = true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    await fs.unlink(tmp);
  }
  const st = await fs.stat(path);
  if ((st.mode & 0o077) !== 0) {
    throw new FailedPreconditionError(`cluster secret file ${path} is readable by others (mode ${(st.mode & 0o777).toString(8)}): chmod 600 ${path}`);
  }
  const raw = await fs.readFile(path);
  const text = raw.toString('utf8').trim();
  const secret = /^[0-9a-fA-F]{64}$/.test(text) ? Buffer.from(text, 'hex') : raw;
  if (secret.length < SECRET_BYTES) throw new InvalidArgumentError(`cluster secret file ${path} holds ${secret.length} bytes; it needs at least ${SECRET_BYTES}`);
  return { secret, created };
}

function deriveKey(secret: Buffer, salt: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, salt, HKDF_INFO, 32));
}

function aad(caCertPem: string): Buffer {
  return createHash('sha256').update(caCertPem.trim()).digest();
}

export function encryptCaKey(keyPem: string, caCertPem: string, secret: Buffer): EncryptedKey {
  const salt = randomBytes(16);
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', deriveKey(secret, salt), iv);
  cipher.setAAD(aad(caCertPem));
  const ciphertext = Buffer.concat([cipher.update(keyPem, 'utf8'), cipher.final()]);
  return {
    alg: 'aes-256-gcm', kdf: 'hkdf-sha256',
    salt: salt.toString('base64'), iv: iv.toString('base64'),
    tag: cipher.getAuthTag().toString('base64'), ciphertext: ciphertext.toString('base64'),
  };
}

export function decryptCaKey(enc: EncryptedKey, caCertPem: string, secret: Buffer): string {
  if (enc.alg !== 'aes-256-gcm' || enc.kdf !== 'hkdf-sha256') {
    throw new FailedPreconditionError(`the stored CA key uses ${String(enc.alg)}/${String(enc.kdf)}, which this version cannot read`);
  }
  try {
    const decipher = createDecipheriv('aes-256-gcm', deriveKey(secret, Buffer.from(enc.salt, 'base64')), Buffer.from(enc.iv, 'base64'));
    decipher.setAAD(aad(caCertPem));
    decipher.setAuthTag(Buffer.from(enc.tag, 'base64'));
    return Buffer.concat([decipher.update(Buffer.from(enc.ciphertext, 'base64')), decipher.final()]).toString('utf8');
  } catch (err) {
    throw new FailedPreconditionError(
      "cannot decrypt the cluster CA key: this replica's cluster secret differs from the one the CA was created with (copy the first replica's --cluster-secret-file here)",
      { cause: err },
    );
  }
}
