/**
 * The cluster CA and the certificates it issues, and the agent's key + CSR (pure: no etcd, no files).
 *
 * ECDSA P-256 with SHA-256 throughout. Issuing and CSRs use @peculiar/x509 (WebCrypto based,
 * maintained, no native code); reading and verifying a peer's certificate is in
 * peer-certificate.ts, on Node's own X509Certificate.
 *
 * The CA decides the identity; whatever a CSR's subject says is ignored.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { X509Certificate, createPrivateKey, createPublicKey, randomBytes, webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import { isValidSegment } from '../keyspace';
import { InvalidArgumentError } from '../errors';
import { isRole, type PeerIdentity, type Role } from './roles';
import { caPublicKeyHash, certificateCommonName, identityUri, normaliseSerial, verifyIssuedBy } from './peer-certificate';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const KEY_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING_ALGORITHM = { name: 'ECDSA', hash: 'SHA-256' } as const;
const DAY_MS = 24 * 60 * 60 * 1000;
/** Back-dating of notBefore, so a peer whose clock is a little behind accepts a new certificate. */
const CLOCK_SKEW_MS = 5 * 60 * 1000;

export const CA_COMMON_NAME = 'cluster-ca';
/**
 * The name every etcd serving certificate carries and every client of ours checks (shared/etcd.ts),
 * so no IP address goes into SNI (Node's DEP0123) whatever address --etcd gives.
 */
export const ETCD_SERVER_NAME = 'etcd';
export const CA_VALIDITY_MS = 3650 * DAY_MS;
/** Default validity per role; an agent renews at two thirds of it. */
export const DEFAULT_VALIDITY_MS: Readonly<Record<Role, number>> = {
  coordinator: 365 * DAY_MS,
  agent: 90 * DAY_MS,
  viewer: 365 * DAY_MS,
  operator: 365 * DAY_MS,
  admin: 365 * DAY_MS,
};

/** A key pair and its certificate, both PEM (the key PKCS#8). */
export interface KeyAndCertificate {
  keyPem: string;
  certPem: string;
}

export interface IssuedCertificate {
  certPem: string;
  serial: string;
  notAfter: Date;
}

/** What the CA writes into a certificate. */
export interface CertificateSubject {
  role: Role;
  /** Node id or user name: one keyspace segment (letters, digits, `. _ : -`). */
  name: string;
  /** Extra DNS names or IP addresses for a coordinator's serving certificate. */
  hosts?: readonly string[];
  /** @default DEFAULT_VALIDITY_MS[role] */
  validityMs?: number;
  /** @default new Date() */
  now?: Date;
}

type CryptoKey = webcrypto.CryptoKey;

function pem(der: ArrayBuffer | Buffer, label: string): string {
  return `${x509.PemConverter.encode(der instanceof Buffer ? new Uint8Array(der).slice().buffer : der, label)}\n`;
}

async function generateKeyPair(extractable: boolean): Promise<webcrypto.CryptoKeyPair> {
  return webcrypto.subtle.generateKey(KEY_ALGORITHM, extractable, ['sign', 'verify']);
}

async function exportPrivateKeyPem(key: CryptoKey): Promise<string> {
  return pem(await webcrypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
}

async function importSigningKey(keyPem: string): Promise<CryptoKey> {
  const der = createPrivateKey(keyPem).export({ type: 'pkcs8', format: 'der' });
  return webcrypto.subtle.importKey('pkcs8', der, KEY_ALGORITHM, false, ['sign']);
}

/** 128 random bits, positive, first hex digit 4-7: always 32 hex digits with no leading zero. */
function randomSerial(): string {
  const b = randomBytes(16);
  b[0] = (b[0] & 0x3f) | 0x40;
  return b.toString('hex');
}

function checkSubject(subject: CertificateSubject): void {
  if (!isRole(subject.role)) throw new InvalidArgumentError(`invalid role ${JSON.stringify(subject.role)}: use coordinator, agent, viewer, operator or admin`);
  if (!isValidSegment(subject.name)) {
    throw new InvalidArgumentError(`invalid ${subject.role} name ${JSON.stringify(subject.name)}: use 1-253 characters from A-Z a-z 0-9 . _ : - starting with a letter or digit`);
  }
  if (subject.validityMs !== undefined && !(subject.validityMs > 0)) throw new InvalidArgumentError(`invalid certificate validity ${subject.validityMs} ms`);
}

/** The cluster CA: its certificate, and its key held as a non-extractable WebCrypto key. */
export class ClusterCa {
  readonly cert: X509Certificate;

  private constructor(readonly certPem: string, private readonly signingKey: CryptoKey) {
    this.cert = new X509Certificate(certPem);
  }

  /** A new CA (CN=cluster-ca, ten years). Returns its key as PEM too, for storing it encrypted. */
  static async create(options: { now?: Date; validityMs?: number } = {}): Promise<{ ca: ClusterCa; keyPem: string }> {
    const now = options.now ?? new Date();
    const keys = await generateKeyPair(true);
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: randomSerial(),
      name: [{ CN: [CA_COMMON_NAME] }],
      notBefore: new Date(now.getTime() - CLOCK_SKEW_MS),
      notAfter: new Date(now.getTime() + (options.validityMs ?? CA_VALIDITY_MS)),
      signingAlgorithm: SIGNING_ALGORITHM,
      keys,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    const keyPem = await exportPrivateKeyPem(keys.privateKey);
    return { ca: await ClusterCa.load(cert.toString('pem'), keyPem), keyPem };
  }

  /** The CA from its certificate and PKCS#8 key; refuses a key that does not belong to the certificate. */
  static async load(certPem: string, keyPem: string): Promise<ClusterCa> {
    const cert = new X509Certificate(certPem);
    if (!cert.ca) throw new InvalidArgumentError(`certificate ${cert.subject} is not a CA certificate`);
    const fromKey = createPublicKey(createPrivateKey(keyPem)).export({ type: 'spki', format: 'der' });
    if (!fromKey.equals(cert.publicKey.export({ type: 'spki', format: 'der' }))) {
      throw new InvalidArgumentError('the CA key does not belong to the CA certificate');
    }
    return new ClusterCa(cert.toString(), await importSigningKey(keyPem));
  }

  get publicKeyHash(): string {
    return caPublicKeyHash(this.cert);
  }

  /** Issues a certificate for a public key the CA has verified possession of (a CSR) or made itself. */
  async issueForPublicKey(publicKey: x509.PublicKey | CryptoKey, subject: CertificateSubject): Promise<IssuedCertificate> {
    checkSubject(subject);
    const now = subject.now ?? new Date();
    const notAfter = new Date(now.getTime() + (subject.validityMs ?? DEFAULT_VALIDITY_MS[subject.role]));
    const caNotAfter = new Date(this.cert.validTo);
    const issuer = new x509.X509Certificate(this.certPem);
    const sans: x509.JsonGeneralNames = [{ type: 'url', value: identityUri(subject.role, subject.name) }];
    let usages: string[] = [x509.ExtendedKeyUsage.clientAuth];
    if (subject.role === 'coordinator') {
      const hosts = new Set(['localhost', '127.0.0.1', '::1', ...(subject.hosts ?? [])]);
      for (const h of hosts) sans.push({ type: isIP(h) ? 'ip' : 'dns', value: h });
      usages = [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth];
    }
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerial(),
      subject: [{ CN: [certificateCommonName(subject.role, subject.name)] }, { O: [subject.role] }],
      issuer: issuer.subjectName,
      notBefore: new Date(now.getTime() - CLOCK_SKEW_MS),
      // A certificate never outlives the CA that vouches for it.
      notAfter: notAfter > caNotAfter ? caNotAfter : notAfter,
      publicKey,
      signingKey: this.signingKey,
      signingAlgorithm: SIGNING_ALGORITHM,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension(usages, false),
        new x509.SubjectAlternativeNameExtension(sans, false),
        await x509.SubjectKeyIdentifierExtension.create(publicKey),
        await x509.AuthorityKeyIdentifierExtension.create(issuer.publicKey),
      ],
    });
    const node = new X509Certificate(cert.toString('pem'));
    return { certPem: `${cert.toString('pem')}\n`, serial: normaliseSerial(node.serialNumber), notAfter: new Date(node.validTo) };
  }

  /** Verifies the CSR's signature and key type, then issues for its key; the CSR's subject is ignored. */
  async issueForCsr(csrPem: string, subject: CertificateSubject): Promise<IssuedCertificate> {
    const csr = await readCsr(csrPem);
    return this.issueForPublicKey(csr.publicKey, subject);
  }

  /** A new key made here and a certificate for it (coordinator serving certs, user credentials). */
  async issueKeyAndCertificate(subject: CertificateSubject): Promise<KeyAndCertificate & IssuedCertificate> {
    const keys = await generateKeyPair(true);
    const issued = await this.issueForPublicKey(keys.publicKey, subject);
    return { ...issued, keyPem: await exportPrivateKeyPem(keys.privateKey) };
  }

  /**
   * A key and certificate for etcd itself (`server`: etcd's serving certificate, valid for
   * `hosts`, also used between members) or for an etcd client whose etcd user is `user`
   * (`client`: CN = the user, as etcd's --client-cert-auth reads it). Neither carries a cluster
   * identity (no cluster:// URI), so no gRPC peer of ours accepts one; and `user` never contains
   * the ':' every role certificate's CN has, so no role certificate is an etcd user of these.
   */
  async issueEtcdCertificate(options: { kind: 'server' | 'client'; user?: string; hosts?: readonly string[]; validityMs?: number; now?: Date }): Promise<KeyAndCertificate & IssuedCertificate> {
    const now = options.now ?? new Date();
    const name = options.kind === 'server' ? 'etcd' : options.user ?? '';
    if (!/^[a-z][a-z0-9-]{0,62}$/.test(name)) throw new InvalidArgumentError(`invalid etcd user ${JSON.stringify(name)}: use a-z 0-9 - starting with a letter`);
    const keys = await generateKeyPair(true);
    const notAfter = new Date(now.getTime() + (options.validityMs ?? DEFAULT_VALIDITY_MS.coordinator));
    const caNotAfter = new Date(this.cert.validTo);
    const issuer = new x509.X509Certificate(this.certPem);
    const sans: x509.JsonGeneralNames = [];
    if (options.kind === 'server') {
      for (const h of new Set([ETCD_SERVER_NAME, 'localhost', '127.0.0.1', '::1', ...(options.hosts ?? [])])) sans.push({ type: isIP(h) ? 'ip' : 'dns', value: h });
    }
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerial(),
      subject: [{ CN: [name] }, { O: ['etcd'] }],
      issuer: issuer.subjectName,
      notBefore: new Date(now.getTime() - CLOCK_SKEW_MS),
      notAfter: notAfter > caNotAfter ? caNotAfter : notAfter,
      publicKey: keys.publicKey,
      signingKey: this.signingKey,
      signingAlgorithm: SIGNING_ALGORITHM,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        // etcd's serving certificate is also its client certificate towards its peers.
        new x509.ExtendedKeyUsageExtension(options.kind === 'server' ? [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth] : [x509.ExtendedKeyUsage.clientAuth], false),
        ...(sans.length > 0 ? [new x509.SubjectAlternativeNameExtension(sans, false)] : []),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
        await x509.AuthorityKeyIdentifierExtension.create(issuer.publicKey),
      ],
    });
    const node = new X509Certificate(cert.toString('pem'));
    return { certPem: `${cert.toString('pem')}\n`, serial: normaliseSerial(node.serialNumber), notAfter: new Date(node.validTo), keyPem: await exportPrivateKeyPem(keys.privateKey) };
  }

  /** Verifies that the CA issued `cert` and that it is valid now; returns its identity. */
  verify(cert: X509Certificate | Buffer | string, now: Date = new Date()): PeerIdentity {
    return verifyIssuedBy(cert, this.cert, now);
  }
}

/** Parses a CSR and checks its self-signature and that its key is ECDSA P-256. */
export async function readCsr(csrPem: string): Promise<x509.Pkcs10CertificateRequest> {
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(csrPem);
  } catch (err) {
    throw new InvalidArgumentError(`not a certificate signing request (PEM PKCS#10): ${err instanceof Error ? err.message : String(err)}`);
  }
  const alg = csr.publicKey.algorithm as { name?: string; namedCurve?: string };
  if (alg.name !== 'ECDSA' || alg.namedCurve !== 'P-256') {
    throw new InvalidArgumentError(`the CSR's key is ${alg.name ?? '?'} ${alg.namedCurve ?? ''}; the cluster issues only for ECDSA P-256 keys`.replace(/ ;/, ';'));
  }
  if (!(await csr.verify())) throw new InvalidArgumentError('the CSR signature does not verify: it was not signed by the key it carries');
  return csr;
}

/** The agent side of a join or a renewal, made without this module's x509 library (csr.ts says why). */
export { createKeyAndCsr } from './csr';

