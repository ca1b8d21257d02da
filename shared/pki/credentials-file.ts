/**
 * The credentials file a person (or script) hands to clusterctl: YAML with the coordinator
 * endpoint(s), the CA, a certificate and its key. admin.yaml, written at first start, is one.
 */
import { parse, stringify } from 'yaml';
import { InvalidArgumentError } from '../errors';
import { isRole, type Role } from './roles';

/** Where a coordinator writes ca.crt, admin.yaml and join-token, and where clusterctl looks for admin.yaml. */
export const DEFAULT_PKI_DIR = '/etc/cluster/pki';
export const ADMIN_CREDENTIALS_FILE = 'admin.yaml';

export interface Credentials {
  /** host:port of one or more coordinator replicas. */
  coordinator: string[];
  /** The identity the certificate carries (informational: the certificate is what counts). */
  user: string;
  role: Role;
  ca: string;
  certificate: string;
  key: string;
}

export function formatCredentials(c: Credentials): string {
  return stringify({ coordinator: c.coordinator, user: c.user, role: c.role, ca: c.ca, certificate: c.certificate, key: c.key }, { lineWidth: 0 });
}

export function parseCredentials(text: string, source = 'credentials file'): Credentials {
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (err) {
    throw new InvalidArgumentError(`${source} is not YAML: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (typeof doc !== 'object' || doc === null) throw new InvalidArgumentError(`${source}: expected a mapping with coordinator, ca, certificate, key`);
  const d = doc as Record<string, unknown>;
  const str = (field: string): string => {
    const v = d[field];
    if (typeof v !== 'string' || v.length === 0) throw new InvalidArgumentError(`${source}: field "${field}" is missing or not text`);
    return v;
  };
  const coord = d.coordinator;
  const coordinator = typeof coord === 'string' ? [coord] : Array.isArray(coord) && coord.every((x) => typeof x === 'string') ? (coord) : undefined;
  if (!coordinator || coordinator.length === 0) throw new InvalidArgumentError(`${source}: field "coordinator" must be host:port or a list of them`);
  const role = str('role');
  if (!isRole(role)) throw new InvalidArgumentError(`${source}: unknown role ${JSON.stringify(role)}`);
  return { coordinator, user: str('user'), role, ca: str('ca'), certificate: str('certificate'), key: str('key') };
}
