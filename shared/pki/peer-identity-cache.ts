/**
 * The identity a peer certificate carries, parsed once per certificate instead of once per
 * call. Every gRPC call reads its caller's certificate several times (the authentication
 * interceptor, the call guard, the handler), and each read parsed the DER again with Node's
 * X509Certificate: at 1,000 agents re-attaching to a new leader that was ~10% of the leader's
 * CPU (bench/README.md, failover).
 *
 * Keyed by the sha256 of the certificate's DER, so an entry is a pure function of the bytes
 * the TLS stack verified: a different certificate, even for the same node, is a miss. Only the
 * identity is cached, never a decision: revocation (checkCall's isRevoked) and the role table
 * are consulted on every call with the cached identity, so revoking a serial still refuses the
 * next call on a connection that was already served.
 */
import { createHash } from 'node:crypto';
import { parsePeerCertificate } from './peer-certificate';
import type { PeerIdentity } from './roles';

/**
 * How many certificates' identities are kept: one per agent plus the users and coordinators,
 * with room for a fleet of 20,000 agents renewing (old and new certificate both live).
 * @default 50_000
 */
export const PEER_IDENTITY_CACHE_ENTRIES = 50_000;

export class PeerIdentityCache {
  /** Insertion order is recency order (a hit is moved to the end), so the first key is the least recently used. */
  private readonly byDigest = new Map<string, Readonly<PeerIdentity>>();
  private parses = 0;

  constructor(private readonly maxEntries: number = PEER_IDENTITY_CACHE_ENTRIES) {
    if (!Number.isInteger(maxEntries) || maxEntries < 1) throw new RangeError(`maxEntries must be a positive integer, got ${maxEntries}`);
  }

  /** The identity `der` carries; throws as parsePeerCertificate does (a refusal is not cached). */
  identity(der: Buffer): Readonly<PeerIdentity> {
    const digest = createHash('sha256').update(der).digest('base64');
    const hit = this.byDigest.get(digest);
    if (hit) {
      this.byDigest.delete(digest);
      this.byDigest.set(digest, hit);
      return hit;
    }
    this.parses++;
    const parsed = Object.freeze(parsePeerCertificate(der));
    if (this.byDigest.size >= this.maxEntries) {
      const oldest = this.byDigest.keys().next();
      if (!oldest.done) this.byDigest.delete(oldest.value);
    }
    this.byDigest.set(digest, parsed);
    return parsed;
  }

  /** How many certificates were parsed (misses): what a test of the cache counts. */
  get parseCount(): number {
    return this.parses;
  }

  get size(): number {
    return this.byDigest.size;
  }
}
