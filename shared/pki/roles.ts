/**
 * Who a certificate speaks for. The role is part of the certificate (O=<role> and the URI SAN
 * `cluster://<role>/<name>`), so a node id and a user name can never be mistaken for each other.
 */
export const ROLES = ['coordinator', 'agent', 'viewer', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/** Roles held by people (clusterctl users); each includes what the one before it may do. */
export const USER_ROLES = ['viewer', 'operator', 'admin'] as const;
export type UserRole = (typeof USER_ROLES)[number];

export function isRole(s: string): s is Role {
  return (ROLES as readonly string[]).includes(s);
}

export function isUserRole(s: string): s is UserRole {
  return (USER_ROLES as readonly string[]).includes(s);
}

/** The verified identity of a peer, read from a certificate the cluster CA issued. */
export interface PeerIdentity {
  role: Role;
  name: string;
  /** Lower-case hex, no leading zeros: the form revocation records are keyed by. */
  serial: string;
  notAfter: Date;
  /** SHA-256 of the certificate's DER, colon-separated upper-case hex (Node's form). */
  fingerprint: string;
}
