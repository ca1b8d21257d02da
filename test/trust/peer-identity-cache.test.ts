/** The peer-identity cache alone: one parse per certificate, bounded, refusals not kept. */
import { expect } from 'chai';
import { X509Certificate } from 'node:crypto';
import { PeerIdentityCache } from '../../shared/pki/peer-identity-cache';
import { parsePeerCertificate } from '../../shared/pki/peer-certificate';
import type { ClusterCa } from '../../shared/pki/cluster-ca';
import { newCa, identity } from './fixtures';

const der = (pem: string): Buffer => new X509Certificate(pem).raw;

describe('trust: peer identity cache', function () {
  this.timeout(30_000);
  let ca: ClusterCa;
  before(async () => { ca = await newCa(); });

  it('parses a certificate once and answers what parsePeerCertificate answers', async () => {
    const cache = new PeerIdentityCache(10);
    const cert = der((await identity(ca, 'agent', 'node-1')).certPem);
    const first = cache.identity(cert);
    expect(first).to.deep.equal(parsePeerCertificate(cert));
    // A copy of the bytes (a new TLS session presents a new Buffer) is still a hit.
    expect(cache.identity(Buffer.from(cert))).to.equal(first);
    expect(cache.parseCount).to.equal(1);
  });

  it('tells two certificates of the same node apart (a renewal is a miss, with its own serial)', async () => {
    const cache = new PeerIdentityCache(10);
    const a = cache.identity(der((await identity(ca, 'agent', 'node-2')).certPem));
    const b = cache.identity(der((await identity(ca, 'agent', 'node-2')).certPem));
    expect(a.name).to.equal(b.name);
    expect(a.serial).to.not.equal(b.serial);
    expect(cache.parseCount).to.equal(2);
  });

  it('keeps at most maxEntries, dropping the least recently used', async () => {
    const cache = new PeerIdentityCache(2);
    const [a, b, c] = await Promise.all(['n-a', 'n-b', 'n-c'].map(async (n) => der((await identity(ca, 'agent', n)).certPem)));
    cache.identity(a);
    cache.identity(b);
    cache.identity(a); // a is now the most recent
    cache.identity(c); // evicts b
    expect(cache.size).to.equal(2);
    expect(cache.parseCount).to.equal(3);
    cache.identity(a);
    expect(cache.parseCount).to.equal(3);
    cache.identity(b);
    expect(cache.parseCount).to.equal(4);
  });

  it('does not keep a refusal: a certificate without a cluster identity throws every time', () => {
    const cache = new PeerIdentityCache(10);
    const caDer = der(ca.certPem); // the CA's own certificate carries no cluster:// identity
    expect(() => cache.identity(caDer)).to.throw(/carries no cluster identity/);
    expect(() => cache.identity(caDer)).to.throw(/carries no cluster identity/);
    expect(cache.size).to.equal(0);
  });
});
