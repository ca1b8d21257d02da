/**
 * File units marked `secret: true` (docs/secrets.md, "A secret in the bundle"): their inline
 * content is sealed into an envelope when the bundle is pushed, so configs/<bundle>/<version>
 * never holds the cleartext; the leader opens it for the command only (bundle-resolution.ts).
 *
 * The digest of a bundle version and the "same content pushed again" comparison look at each
 * secret as `secret:v1:<fingerprint>` (the HMAC of its cleartext under a key derived from the
 * cluster secret, shared/secret-envelope.ts): it changes when the cleartext changes, stays the
 * same when the value is re-sealed (every push seals with a fresh nonce; a key rotation
 * re-encrypts it), and, being keyed, does not let whoever reads the digest test guesses of a
 * short secret, which a plain sha256 of the content would.
 */
import { InvalidArgumentError } from '../../shared';
import type { Bundle, FileUnitSpec, UnitSpec } from '../../shared/bundle';
import { comparable, ENVELOPE_PREFIX, isEnvelope, REDACTED } from '../../shared/secret-envelope';
import type { SecretKeyring } from './secret-keyring';
import { secretValueProblem } from './secret-store';

/** The largest secret content of a unit: the same as a secret file's. */
export const MAX_SECRET_CONTENT_BYTES = 256 * 1024;

function isSecretUnit(u: UnitSpec): u is FileUnitSpec & { content: string } {
  return u.kind === 'file' && u.secret === true && typeof u.content === 'string';
}

/** Whether a bundle holds secret inline content (pushing one needs the admin role). */
export function hasSecretUnits(bundle: Pick<Bundle, 'units'>): boolean {
  return bundle.units.some(isSecretUnit);
}

function mapSecretContent(bundle: Bundle, f: (content: string, unit: FileUnitSpec) => string): Bundle {
  if (!hasSecretUnits(bundle)) return bundle;
  return { ...bundle, units: bundle.units.map((u) => (isSecretUnit(u) ? { ...u, content: f(u.content, u) } : u)) };
}

/** A stored bundle as digests and comparisons see it: each secret by its fingerprint. */
export function comparableBundle(bundle: Bundle): Bundle {
  return mapSecretContent(bundle, (c) => comparable(c) ?? c);
}

/** A stored bundle as an operator sees it (`bundle show`, `-o json|yaml`). */
export function redactedBundle(bundle: Bundle): Bundle {
  return mapSecretContent(bundle, () => REDACTED);
}

export interface SealedBundle {
  /** What configs/ stores: every secret content an envelope. */
  sealed: Bundle;
  /** comparableBundle() of `sealed`, computed from the cleartext. */
  comparable: Bundle;
}

/**
 * Seals every secret content of a pushed bundle (cleartext). An envelope pushed as content is
 * refused: it would be a secret copied from elsewhere that nobody here typed.
 */
export async function sealBundle(bundle: Bundle, keyring: SecretKeyring | undefined): Promise<SealedBundle> {
  if (!hasSecretUnits(bundle)) return { sealed: bundle, comparable: bundle };
  const problems: string[] = [];
  for (const u of bundle.units) {
    if (!isSecretUnit(u)) continue;
    if (isEnvelope(u.content)) {
      problems.push(`unit ${u.id}: secret content must be the cleartext, not an envelope copied from a stored bundle`);
      continue;
    }
    const p = secretValueProblem(`unit ${u.id}: secret content`, Buffer.byteLength(u.content), MAX_SECRET_CONTENT_BYTES);
    if (p) problems.push(p);
  }
  if (problems.length > 0) throw new InvalidArgumentError(`bundle ${bundle.name}@${bundle.version} refused, nothing stored: ${problems.join('; ')}`);
  if (!keyring) throw new InvalidArgumentError('secret units are not available on this coordinator (it holds no secrets keyring)');
  const envelopes = new Map<string, string>();
  for (const u of bundle.units) if (isSecretUnit(u)) envelopes.set(u.id, await keyring.encrypt(u.content));
  return {
    sealed: mapSecretContent(bundle, (c, u) => envelopes.get(u.id) ?? c),
    comparable: mapSecretContent(bundle, (c) => `${ENVELOPE_PREFIX}${keyring.fingerprintOf(Buffer.from(c))}`),
  };
}

/**
 * The bundle a command carries: every secret content opened (`open` decrypts an envelope), and
 * the cleartexts, which the job redacts from everything it records.
 */
export async function openBundle(bundle: Bundle, open: (envelope: string) => Promise<string>): Promise<{ bundle: Bundle; secrets: string[] }> {
  if (!hasSecretUnits(bundle)) return { bundle, secrets: [] };
  const opened = new Map<string, string>();
  for (const u of bundle.units) if (isSecretUnit(u)) opened.set(u.id, isEnvelope(u.content) ? await open(u.content) : u.content);
  return { bundle: mapSecretContent(bundle, (c, u) => opened.get(u.id) ?? c), secrets: [...opened.values()] };
}
