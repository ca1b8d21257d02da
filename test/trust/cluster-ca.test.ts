/** The cluster CA and its certificates, round trips through Node's own X509Certificate. */
import 'reflect-metadata';
import { expect } from 'chai';
import * as x509 from '@peculiar/x509';
import { X509Certificate, createHash, webcrypto } from 'node:crypto';
import { ClusterCa, createKeyAndCsr, readCsr, CA_VALIDITY_MS, DEFAULT_VALIDITY_MS } from '../../shared/pki/cluster-ca';
import { caPublicKeyHash, parsePeerCertificate, verifyIssuedBy, normaliseSerial, renewalTime } from '../../shared/pki/peer-certificate';
import { InvalidArgumentError } from '../../shared/errors';
import { UnauthenticatedError } from '../../shared/pki/errors';
import { ROLES } from '../../shared/pki/roles';
import { expectReject } from '../helpers';

const DAY = 24 * 60 * 60 * 1000;
const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

describe('trust: cluster CA and certificates', function () {
  this.timeout(20_000);
  let ca: ClusterCa;
  let caKeyPem: string;

  before(async () => {
    ({ ca, keyPem: caKeyPem } = await ClusterCa.create());
  });

  it('creates a ten-year P-256 CA named cluster-ca that may sign certificates', () => {
    const cert = new X509Certificate(ca.certPem);
    expect(cert.subject).to.equal('CN=cluster-ca');
    expect(cert.ca).to.equal(true);
    expect(cert.publicKey.asymmetricKeyDetails?.namedCurve).to.equal('prime256v1');
    const life = Date.parse(cert.validTo) - Date.parse(cert.validFrom);
    expect(life).to.be.within(CA_VALIDITY_MS, CA_VALIDITY_MS + 10 * 60 * 1000);
    const ku = new x509.X509Certificate(ca.certPem).getExtension(x509.KeyUsagesExtension);
    expect(ku && ku.usages & x509.KeyUsageFlags.keyCertSign).to.not.equal(0);
    expect(caKeyPem).to.match(/^-----BEGIN PRIVATE KEY-----/);
  });

  it('the CA public-key hash is sha256 of its SubjectPublicKeyInfo DER', () => {
    const spki = new X509Certificate(ca.certPem).publicKey.export({ type: 'spki', format: 'der' });
    expect(ca.publicKeyHash).to.equal(createHash('sha256').update(spki).digest('hex')).and.match(/^[0-9a-f]{64}$/);
    expect(caPublicKeyHash(ca.certPem)).to.equal(ca.publicKeyHash);
  });

  it('loads from its PEMs, and refuses a key that is not the certificate’s', async () => {
    const again = await ClusterCa.load(ca.certPem, caKeyPem);
    const issued = await again.issueKeyAndCertificate({ role: 'viewer', name: 'v' });
    expect(ca.verify(issued.certPem).name).to.equal('v');
    const other = await ClusterCa.create();
    await expectReject(ClusterCa.load(ca.certPem, other.keyPem), /does not belong to the CA certificate/);
  });

  describe('each role round-trips through CSR → certificate → parse', () => {
    for (const role of ROLES) {
      it(role, async () => {
        const { csrPem, keyPem } = await createKeyAndCsr('ignored-by-the-ca');
        expect(keyPem).to.match(/^-----BEGIN PRIVATE KEY-----/);
        const now = new Date();
        const issued = await ca.issueForCsr(csrPem, { role, name: 'n-1', now, hosts: ['10.1.2.3', 'coord.example'] });
        const cert = new X509Certificate(issued.certPem);
        expect(cert.subject).to.equal(`CN=${role}:n-1\nO=${role}`);
        expect(cert.ca).to.equal(false);
        const life = Date.parse(cert.validTo) - now.getTime();
        expect(life).to.be.within(DEFAULT_VALIDITY_MS[role] - 1000, DEFAULT_VALIDITY_MS[role] + 1000);
        if (role === 'coordinator') {
          expect(cert.keyUsage).to.have.members([SERVER_AUTH, CLIENT_AUTH]);
          expect(cert.subjectAltName).to.equal('URI:cluster://coordinator/n-1, DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, IP Address:10.1.2.3, DNS:coord.example');
        } else {
          expect(cert.keyUsage).to.deep.equal([CLIENT_AUTH]);
          expect(cert.subjectAltName).to.equal(`URI:cluster://${role}/n-1`);
        }
        // The certificate holds the CSR's key, not one the CA made.
        const csrKey = (await readCsr(csrPem)).publicKey.rawData;
        expect(Buffer.from(cert.publicKey.export({ type: 'spki', format: 'der' })).equals(Buffer.from(csrKey))).to.equal(true);
        const id = verifyIssuedBy(cert, ca.certPem);
        expect(id).to.deep.include({ role, name: 'n-1', serial: issued.serial, fingerprint: cert.fingerprint256 });
        expect(id.notAfter.getTime()).to.equal(issued.notAfter.getTime());
      });
    }
  });

  it('agent validity is an option; a certificate never outlives the CA', async () => {
    const short = await ca.issueKeyAndCertificate({ role: 'agent', name: 'n1', validityMs: 2 * DAY });
    expect(short.notAfter.getTime() - Date.now()).to.be.within(2 * DAY - 5000, 2 * DAY + 1000);
    const long = await ca.issueKeyAndCertificate({ role: 'agent', name: 'n1', validityMs: 20 * 365 * DAY });
    expect(long.notAfter.getTime()).to.equal(Date.parse(ca.cert.validTo));
  });

  it('renewal is due at two thirds of the validity', async () => {
    const now = new Date('2030-01-01T00:00:00Z');
    const c = await ca.issueKeyAndCertificate({ role: 'agent', name: 'n1', now, validityMs: 90 * DAY });
    // notBefore is back-dated 5 minutes for clock skew.
    const from = now.getTime() - 5 * 60 * 1000;
    expect(renewalTime(c.certPem).getTime()).to.equal(from + Math.floor(((now.getTime() + 90 * DAY - from) * 2) / 3));
  });

  it('serial numbers are random, positive, and normalised', async () => {
    const serials = new Set<string>();
    for (let i = 0; i < 8; i++) serials.add((await ca.issueKeyAndCertificate({ role: 'viewer', name: 'v' })).serial);
    expect(serials.size).to.equal(8);
    for (const s of serials) expect(s).to.match(/^[4-7][0-9a-f]{31}$/);
    expect(normaliseSerial('00:0A:bC')).to.equal('abc');
    expect(() => normaliseSerial('xyz')).to.throw(InvalidArgumentError);
  });

  it('refuses invalid names and roles', async () => {
    await expectReject(ca.issueKeyAndCertificate({ role: 'agent', name: 'a/b' }), /invalid agent name/);
    await expectReject(ca.issueKeyAndCertificate({ role: 'root' as never, name: 'a' }), /invalid role "root"/);
  });

  it('verifies a CSR’s signature before issuing, and takes only P-256 keys', async () => {
    const { csrPem } = await createKeyAndCsr('n1');
    // Flip one bit in the signature (the last bytes of the DER).
    const der = Buffer.from(csrPem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    der[der.length - 3] ^= 0x01;
    const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    await expectReject(ca.issueForCsr(tampered, { role: 'agent', name: 'n1' }), /CSR signature does not verify/);
    await expectReject(ca.issueForCsr('hello', { role: 'agent', name: 'n1' }), /not a certificate signing request/);
    const p384 = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-384' }, true, ['sign', 'verify']);
    const csr384 = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=n1', keys: p384, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-384' } });
    await expectReject(ca.issueForCsr(csr384.toString('pem'), { role: 'agent', name: 'n1' }), /only for ECDSA P-256 keys/);
  });

  it('verifyIssuedBy refuses another CA’s certificate, an expired one, a not-yet-valid one and the CA itself', async () => {
    const other = (await ClusterCa.create()).ca;
    const foreign = await other.issueKeyAndCertificate({ role: 'admin', name: 'root' });
    expect(() => verifyIssuedBy(foreign.certPem, ca.certPem)).to.throw(UnauthenticatedError, /was not issued by this cluster's CA/);
    const old = await ca.issueKeyAndCertificate({ role: 'agent', name: 'n1', now: new Date(Date.now() - 3 * DAY), validityMs: DAY });
    expect(() => verifyIssuedBy(old.certPem, ca.certPem)).to.throw(UnauthenticatedError, /expired at/);
    expect(() => verifyIssuedBy(old.certPem, ca.certPem, new Date(Date.now() - 2.5 * DAY))).to.not.throw();
    expect(() => verifyIssuedBy(old.certPem, ca.certPem, new Date(Date.now() - 5 * DAY))).to.throw(UnauthenticatedError, /not valid before/);
    expect(() => verifyIssuedBy(ca.certPem, ca.certPem)).to.throw(UnauthenticatedError, /is a CA certificate/);
  });

  it('a certificate whose subject and identity disagree is refused, even from the cluster CA', async () => {
    // Forged with the CA key itself: O=admin but the URI says agent.
    const signingKey = await webcrypto.subtle.importKey('pkcs8', Buffer.from(caKeyPem.replace(/-----[^-]+-----|\s/g, ''), 'base64'), { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
    const keys = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
    const forge = async (subject: string, uris: string[]): Promise<string> => (await x509.X509CertificateGenerator.create({
      serialNumber: '42', subject, issuer: 'CN=cluster-ca', notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + DAY),
      publicKey: keys.publicKey, signingKey, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      extensions: [new x509.SubjectAlternativeNameExtension(uris.map((value) => ({ type: 'url' as const, value })))],
    })).toString('pem');
    const mixed = await forge('CN=agent:n1, O=admin', ['cluster://agent/n1']);
    expect(() => verifyIssuedBy(mixed, ca.certPem)).to.throw(UnauthenticatedError, /does not match its identity/);
    // CN=<name>, as certificates were issued before etcd users: the same gRPC identity.
    const legacy = await forge('CN=n1, O=agent', ['cluster://agent/n1']);
    expect(verifyIssuedBy(legacy, ca.certPem)).to.include({ role: 'agent', name: 'n1' });
    const otherName = await forge('CN=agent:n2, O=agent', ['cluster://agent/n1']);
    expect(() => verifyIssuedBy(otherName, ca.certPem)).to.throw(UnauthenticatedError, /does not match its identity/);
    const two = await forge('CN=n1, O=agent', ['cluster://agent/n1', 'cluster://admin/n1']);
    expect(() => parsePeerCertificate(two)).to.throw(UnauthenticatedError, /carries no cluster identity/);
    const none = await forge('CN=n1, O=agent', []);
    expect(() => parsePeerCertificate(none)).to.throw(UnauthenticatedError, /carries no cluster identity/);
    const badRole = await forge('CN=n1, O=root', ['cluster://root/n1']);
    expect(() => parsePeerCertificate(badRole)).to.throw(UnauthenticatedError, /is not cluster:\/\/<role>\/<name>/);
  });
});
