/**
 * Secret group variables (`clusterctl group set G --secret-var NAME=VALUE`, docs/secrets.md):
 * their values are sealed before the group is stored, so groups/<name>, every job record that
 * copies them and every node record's applied inputs hold the envelope, never the cleartext.
 * The leader opens them per command (coordinator/jobs/config-records.ts openVariables).
 *
 * Reads return the envelope, so a read-modify-write (`group set` changing only the bundle)
 * sends the envelope back: a value equal to the stored envelope of the same variable is kept
 * as it is. A new cleartext or an envelope from elsewhere (copied from another group) is a new
 * secret: storing one needs the admin role (shared/pki/authorization.ts, SetGroup with secret).
 */
import { InvalidArgumentError } from '../../shared';
import { isEnvelope } from '../../shared/secret-envelope';
import type { SecretKeyring } from './secret-keyring';
import { secretValueProblem } from './secret-store';

/** The largest secret variable. */
export const MAX_SECRET_VARIABLE_BYTES = 64 * 1024;

export interface SealedVariables {
  variables: Record<string, string>;
  /** Whether a secret is new or changed (needs admin). */
  newSecret: boolean;
}

/** Names among `variables` holding a secret (an envelope). */
export function secretVariableNames(variables: Readonly<Record<string, string>>): string[] {
  return Object.keys(variables).filter((k) => isEnvelope(variables[k])).sort();
}

export async function sealVariables(
  keyring: SecretKeyring | undefined,
  incoming: Readonly<Record<string, string>>,
  secretNames: readonly string[],
  stored: Readonly<Record<string, string>>,
): Promise<SealedVariables> {
  const out: Record<string, string> = { ...incoming };
  let newSecret = false;
  for (const name of new Set(secretNames)) {
    // Own keys only: a name like `constructor` must not find Object.prototype's.
    const value = Object.hasOwn(out, name) ? out[name] : undefined;
    if (typeof value !== 'string') throw new InvalidArgumentError(`secret variable ${name} has no value: give it with --secret-var ${name}=VALUE`);
    if (isEnvelope(value)) continue;
    const problem = secretValueProblem(`secret variable ${name}`, Buffer.byteLength(value), MAX_SECRET_VARIABLE_BYTES);
    if (problem) throw new InvalidArgumentError(problem);
    if (!keyring) throw new InvalidArgumentError('secret variables are not available on this coordinator');
    out[name] = await keyring.encrypt(value);
    newSecret = true;
  }
  for (const [name, value] of Object.entries(out)) if (isEnvelope(value) && stored[name] !== value) newSecret = true;
  return { variables: out, newSecret };
}
