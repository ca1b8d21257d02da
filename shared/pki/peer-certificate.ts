/**
 * Reading and checking a peer's certificate with Node's own X509Certificate (what the TLS stack
 * hands us). Kept apart from cluster-ca.ts so that a client that only verifies does not load
 * the issuing library.
 *
 * Identity: CN=<role>:<name>, O=<role> and exactly one URI SAN `cluster://<role>/<name>`. A
 * reader requires all three to agree, so a certificate cannot be read as another role than the
 * one the CA wrote. The CN is also the certificate's etcd user (etcd's --client-cert-auth): an
 * agent's is `agent:<nodeId>`, the user its enrolment creates; etcd's own users (root,
 * coordinator) have no ':' so no role certificate can be one of them.
 */
import { X509Certificate, createHash } from 'node:crypto';
import { isValidSegment } from '../keyspace';
import { InvalidArgumentError } from '../errors';
import { UnauthenticatedError } from './errors';
import { isRole, type PeerIdentity, type Role } from './roles';

export const URI_SCHEME = 'cluster://';

/** The CN the CA writes into a role certificate: the etcd user it authenticates as. */
export function certificateCommonName(role: Role, name: string): string {
  return `${role}:${name}`;
}

export function identityUri(role: Role, name: string): string {
  return `${URI_SCHEME}${role}/${name}`;
}

/** Serial numbers as revocation keys use them: lower-case hex without leading zeros. */
export function normaliseSerial(serial: string): string {
  const s = serial.replace(/:/g, '').toLowerCase().replace(/^0+/, '');
  if (!/^[0-9a-f]+$/.test(s)) throw new InvalidArgumentError(`invalid certificate serial ${JSON.stringify(serial)}: expected hex digits`);
  return s;
}

/** sha256 of the CA's SubjectPublicKeyInfo (DER), hex: what a join token pins. */
export function caPublicKeyHash(caCertPem: string | X509Certificate): string {
  const cert = typeof caCertPem === 'string' ? new X509Certificate(caCertPem) : caCertPem;
  return createHash('sha256').update(cert.publicKey.export({ type: 'spki', format: 'der' })).digest('hex');
}

function toX509(cert: X509Certificate | Buffer | string): X509Certificate {
  return cert instanceof X509Certificate ? cert : new X509Certificate(cert);
}

/**
 * Reads the identity a cluster certificate carries. Does NOT check who issued it: use
 * verifyIssuedBy (or trust that the TLS stack verified the chain against the cluster CA).
 */
export function parsePeerCertificate(input: X509Certificate | Buffer | string): PeerIdentity {
  const cert = toX509(input);
  const uris = (cert.subjectAltName ?? '').split(', ').filter((s) => s.startsWith('URI:')).map((s) => s.slice(4));
  const ours = uris.filter((u) => u.startsWith(URI_SCHEME));
  if (ours.length !== 1) throw new UnauthenticatedError(`certificate ${cert.subject.replace(/\n/g, ', ')} carries no cluster identity (expected one URI SAN cluster://<role>/<name>)`);
  const m = /^cluster:\/\/([a-z]+)\/(.+)$/.exec(ours[0]);
  if (!m || !isRole(m[1]) || !isValidSegment(m[2])) throw new UnauthenticatedError(`certificate identity ${JSON.stringify(ours[0])} is not cluster://<role>/<name>`);
  const [, role, name] = m;
  const subject = new Map<string, string[]>();
  for (const line of cert.subject.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) subject.set(line.slice(0, i), [...(subject.get(line.slice(0, i)) ?? []), line.slice(i + 1)]);
  }
  const cn = subject.get('CN') ?? [];
  const o = subject.get('O') ?? [];
  // CN=<name> is what the CA wrote before etcd users existed: such a certificate keeps its gRPC
  // identity (URI and O still have to agree) but is no etcd user of ours (docs/operations.md).
  if (cn.length !== 1 || (cn[0] !== certificateCommonName(role, name) && cn[0] !== name) || o.length !== 1 || o[0] !== role) {
    throw new UnauthenticatedError(`certificate subject ${cert.subject.replace(/\n/g, ', ')} does not match its identity ${ours[0]}`);
  }
  return { role, name, serial: normaliseSerial(cert.serialNumber), notAfter: new Date(cert.validTo), fingerprint: cert.fingerprint256 };
}

/** Checks that `ca` issued `cert` (name chain and signature), that it is a leaf, and that it is valid at `now`. */
export function verifyIssuedBy(input: X509Certificate | Buffer | string, caInput: X509Certificate | string, now: Date = new Date()): PeerIdentity {
  const cert = toX509(input);
  const ca = toX509(caInput);
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) {
    throw new UnauthenticatedError(`certificate ${cert.subject.replace(/\n/g, ', ')} was not issued by this cluster's CA`);
  }
  if (cert.ca) throw new UnauthenticatedError(`certificate ${cert.subject.replace(/\n/g, ', ')} is a CA certificate, not a cluster identity`);
  const from = new Date(cert.validFrom);
  const to = new Date(cert.validTo);
  if (now < from) throw new UnauthenticatedError(`certificate ${cert.subject.replace(/\n/g, ', ')} is not valid before ${from.toISOString()}`);
  if (now > to) throw new UnauthenticatedError(`certificate ${cert.subject.replace(/\n/g, ', ')} expired at ${to.toISOString()}`);
  return parsePeerCertificate(cert);
}

/** When a certificate should be renewed: at two thirds of its validity (the agent's schedule). */
export function renewalTime(input: X509Certificate | Buffer | string): Date {
  const cert = toX509(input);
  const from = Date.parse(cert.validFrom);
  const to = Date.parse(cert.validTo);
  return new Date(from + Math.floor(((to - from) * 2) / 3));
}
