/**
 * Mutual TLS for every gRPC link: credentials for a server, for a client, and the verified
 * identity of the peer inside a handler.
 *
 * One port serves everything. The server asks every client for a certificate but lets the
 * TLS handshake finish without one (requestCert, rejectUnauthorized=false), because a joining
 * agent has no certificate yet. What a call may do is then decided in ONE server interceptor
 * that runs before every handler of every service (health and reflection included): a call
 * without a certificate the cluster CA verified is refused with UNAUTHENTICATED unless its
 * method is listed as open (the join call, which proves itself with a token); a revoked
 * serial is refused; the role table is consulted. A second port would have meant a second
 * address for agents to learn and a second listener to secure; per-handler checks would
 * have meant that a forgotten check is an open method.
 *
 * TLS 1.3 only, both ways (grpc-js passes these options to Node's TLS server and to
 * tls.createSecureContext). No plaintext fallback exists: an insecure client fails the handshake.
 */
import * as grpc from '@grpc/grpc-js';
import { X509Certificate, createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { connect as tlsConnect, createSecureContext, type DetailedPeerCertificate, type PeerCertificate, type SecureContextOptions } from 'node:tls';
import { ClusterError, UnavailableError } from '../errors';
import { authorize } from './authorization';
import { caPublicKeyHash, verifyIssuedBy } from './peer-certificate';
import { PeerIdentityCache } from './peer-identity-cache';
import { UnauthenticatedError } from './errors';
import type { PeerIdentity, Role } from './roles';

const MIN_TLS = 'TLSv1.3';

export interface ServerTlsOptions {
  /** The cluster CA (PEM): the only issuer whose client certificates are accepted. */
  caPem: string;
  /** This server's certificate (PEM); the CA is appended to the chain it presents, so a joining agent can pin it. */
  certPem: string;
  keyPem: string;
  /** Full method paths (`/cluster.v1.PkiService/Join`) that a client without a certificate may call. */
  openMethods?: readonly string[];
  /** Whether a serial is revoked (RevocationSet.isRevoked); consulted at the start of every call. */
  isRevoked?: (serial: string) => boolean;
  /**
   * Throws to refuse a call by role, before the handler runs.
   * @default authorize(peer, { method: path }) with the table of authorization.ts
   */
  authorizeCall?: (peer: PeerIdentity, path: string) => void;
  /**
   * Interceptors run before authentication, next to grpc-js's own call (credentials'
   * interceptors come first in grpc-js's chain): for what only that call sees, such as its
   * refusal of an oversize request (coordinator/call-guard.ts oversizeRefusal).
   * @default []
   */
  innermostInterceptors?: readonly grpc.ServerInterceptor[];
}

function contextOptions(caPem: string, certPem: string, keyPem: string): SecureContextOptions {
  return { ca: caPem, cert: `${certPem.trim()}\n${caPem.trim()}\n`, key: keyPem, minVersion: MIN_TLS };
}

/** What the call carries: Node's view of the client certificate when the TLS stack verified it. */
interface HasAuthContext {
  getAuthContext(): { sslPeerCertificate?: PeerCertificate } | null;
}

/** The process's identities of peer certificates, parsed once per certificate (peer-identity-cache.ts). */
export const peerIdentities = new PeerIdentityCache();

/**
 * The verified identity of the caller, for handlers: throws UnauthenticatedError when the call
 * came without a certificate the cluster CA issued (only open methods can get that far).
 */
export function peerIdentity(call: HasAuthContext): PeerIdentity {
  const cert = call.getAuthContext()?.sslPeerCertificate;
  if (!cert?.raw) throw new UnauthenticatedError('no client certificate: this call needs a certificate issued by the cluster CA');
  return peerIdentities.identity(cert.raw);
}

function refusal(err: unknown): Parameters<grpc.ServerInterceptingCallInterface["sendStatus"]>[0] {
  if (err instanceof ClusterError) return { code: err.code, details: err.message, metadata: errorMetadata(err) };
  return { code: grpc.status.UNAUTHENTICATED, details: `unauthenticated: ${err instanceof Error ? err.message : String(err)}` };
}

function errorMetadata(err: ClusterError): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set('x-cluster-error', err.name);
  return md;
}

/** The checks every call passes before its handler runs; undefined = let it through. */
export function checkCall(path: string, call: HasAuthContext, options: Pick<ServerTlsOptions, 'openMethods' | 'isRevoked' | 'authorizeCall'>): ClusterError | undefined {
  if (options.openMethods?.includes(path)) return undefined;
  try {
    const peer = peerIdentity(call);
    if (options.isRevoked?.(peer.serial)) {
      return new UnauthenticatedError(`certificate ${peer.serial} of ${peer.role} ${peer.name} has been revoked`);
    }
    (options.authorizeCall ?? ((p: PeerIdentity, m: string) => authorize(p, { method: m })))(peer, path);
    return undefined;
  } catch (err) {
    if (err instanceof ClusterError) return err;
    return new UnauthenticatedError(`unauthenticated: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/**
 * Server credentials with the cluster's TLS settings and the authentication interceptor.
 * `rotate` swaps the serving certificate for new connections (renewal) without a restart.
 */
export class ClusterServerCredentials extends grpc.ServerCredentials {
  private readonly interceptor: grpc.ServerInterceptor;

  constructor(private options: ServerTlsOptions) {
    super({ requestCert: true, rejectUnauthorized: false, minVersion: MIN_TLS }, contextOptions(options.caPem, options.certPem, options.keyPem));
    this.interceptor = (descriptor, call) => {
      const listener = new grpc.ServerListenerBuilder()
        .withOnReceiveMetadata((metadata, next) => {
          const refused = checkCall(descriptor.path, call, this.options);
          if (refused) call.sendStatus(refusal(refused));
          else next(metadata);
        })
        .build();
      return new grpc.ServerInterceptingCall(call, new grpc.ResponderBuilder().withStart((next) => next(listener)).build());
    };
  }

  rotate(certPem: string, keyPem: string): void {
    this.options = { ...this.options, certPem, keyPem };
    this.updateSecureContextOptions(contextOptions(this.options.caPem, certPem, keyPem));
  }

  override _getInterceptors(): grpc.ServerInterceptor[] {
    return [...(this.options.innermostInterceptors ?? []), this.interceptor];
  }

  override _equals(other: grpc.ServerCredentials): boolean {
    return other === this;
  }
}

/** The one function that gives a gRPC server its credentials. */
export function serverCredentials(options: ServerTlsOptions): ClusterServerCredentials {
  return new ClusterServerCredentials(options);
}

export interface ClientTlsOptions {
  /** The cluster CA (PEM): the only issuer whose server certificates are accepted. */
  caPem: string;
  /** This client's certificate and key; absent only for the join call. */
  certPem?: string;
  keyPem?: string;
  /**
   * The role the server's certificate must carry, whatever address was dialled.
   * @default 'coordinator'
   */
  serverRole?: Role;
}

/**
 * Checks a server certificate as a cluster peer: issued by the CA, valid, and for `role`. The
 * host name dialled is ignored on purpose: the election record names an address, and only
 * the CA can vouch that what answers there is a coordinator.
 */
export function checkServerCertificate(ca: string | X509Certificate, role: Role, cert: PeerCertificate | Buffer): Error | undefined {
  try {
    const raw = Buffer.isBuffer(cert) ? cert : cert.raw;
    return roleMismatch(verifyIssuedBy(raw, ca), role);
  } catch (err) {
    return err instanceof Error ? err : new Error(String(err));
  }
}

/**
 * Server certificates this process verified against a CA, by CA and DER digest. Every redial
 * of an agent (all of a simulated fleet's in one process) verified the same coordinator
 * certificate again: a parse and a signature check per handshake. A hit still checks the
 * expiry and the role; a certificate not seen, or seen under another CA, is verified in full.
 */
const verifiedServers = new Map<string, PeerIdentity>();
const VERIFIED_SERVERS_MAX = 256;

function checkServerCertificateCached(ca: X509Certificate, caDigest: string, role: Role, cert: PeerCertificate): Error | undefined {
  const key = `${caDigest}:${createHash('sha256').update(cert.raw).digest('base64')}`;
  const known = verifiedServers.get(key);
  if (known && Date.now() <= known.notAfter.getTime()) {
    return roleMismatch(known, role);
  }
  let peer: PeerIdentity;
  try {
    peer = verifyIssuedBy(cert.raw, ca);
  } catch (err) {
    return err instanceof Error ? err : new Error(String(err));
  }
  if (verifiedServers.size >= VERIFIED_SERVERS_MAX) verifiedServers.clear();
  verifiedServers.set(key, peer);
  return roleMismatch(peer, role);
}

function roleMismatch(peer: PeerIdentity, role: Role): Error | undefined {
  return peer.role === role ? undefined : new Error(`the server's certificate is for ${peer.role} ${peer.name}, not a ${role}: refusing to talk to it`);
}

/**
 * Channel options for a client of the cluster: the TLS server name (SNI) is a fixed DNS name.
 * The address dialled is not what identifies a coordinator (checkServerCertificate ignores
 * it), and grpc-js would otherwise put an IP address into SNI, which RFC 6066 forbids and Node
 * warns about on stderr (DEP0123).
 */
export const CLUSTER_CHANNEL_OPTIONS: Readonly<grpc.ChannelOptions> = {
  'grpc.ssl_target_name_override': 'coordinator.cluster',
  // No channelz bookkeeping (shared/grpc-limits.ts GRPC_OPTIONS says why).
  'grpc.enable_channelz': 0,
};

/** The one function that gives a gRPC client its credentials. */
export function clientCredentials(options: ClientTlsOptions): grpc.ChannelCredentials {
  if ((options.certPem === undefined) !== (options.keyPem === undefined)) throw new UnauthenticatedError('a client certificate needs its key, and a key its certificate');
  const role = options.serverRole ?? 'coordinator';
  // Parsed once here, not in every handshake's check (a simulated fleet dials 1,000 streams).
  const ca = new X509Certificate(options.caPem);
  const caDigest = createHash('sha256').update(ca.raw).digest('base64');
  const context = createSecureContext({
    ca: options.caPem,
    ...(options.certPem !== undefined ? { cert: options.certPem, key: options.keyPem } : {}),
    minVersion: MIN_TLS,
  });
  return grpc.ChannelCredentials.createFromSecureContext(context, {
    checkServerIdentity: (_host, cert) => checkServerCertificateCached(ca, caDigest, role, cert),
  });
}

function splitHostPort(address: string): { host: string; port: number } {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(address);
  if (!m) throw new UnavailableError(`invalid coordinator address ${JSON.stringify(address)}: use HOST:PORT`);
  return { host: m[1], port: Number(m[2]) };
}

/**
 * The first contact of a joining agent (k3s's /cacerts step): a TLS handshake that trusts
 * nothing yet, takes the CA from the chain the coordinator presents, and accepts it only if
 * its public-key hash equals the one the join token pins and it issued the server's
 * coordinator certificate. Nothing secret is sent before this check passes.
 */
export async function fetchPinnedCa(address: string, caHash: string, timeoutMs = 10_000): Promise<string> {
  const { host, port } = splitHostPort(address);
  const chain = await new Promise<PeerCertificate[]>((resolve, reject) => {
    const socket = tlsConnect({
      host, port, minVersion: MIN_TLS, ALPNProtocols: ['h2'],
      ...(isIP(host) ? {} : { servername: host }),
      // Verified below against the pinned hash instead of a trust store we do not have yet.
      rejectUnauthorized: false,
    });
    const timer = setTimeout(() => { socket.destroy(); reject(new UnavailableError(`no TLS answer from ${address} within ${timeoutMs} ms`)); }, timeoutMs);
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      const certs: PeerCertificate[] = [];
      // The chain as sent; a self-signed CA is its own issuer, which ends the walk.
      for (let c: DetailedPeerCertificate | undefined = socket.getPeerCertificate(true); c?.raw && !certs.some((x) => x.raw.equals(c!.raw)); c = c.issuerCertificate) {
        certs.push(c);
      }
      socket.destroy();
      resolve(certs);
    });
    socket.once('error', (err: Error) => { clearTimeout(timer); reject(new UnavailableError(`cannot reach ${address} over TLS: ${err.message}`, { cause: err })); });
  });
  if (chain.length === 0) throw new UnauthenticatedError(`${address} presented no certificate`);
  const ca = chain.slice(1).map((c) => new X509Certificate(c.raw)).find((c) => c.ca && caPublicKeyHash(c) === caHash);
  if (!ca) {
    const seen = chain.slice(1).map((c) => caPublicKeyHash(new X509Certificate(c.raw)));
    throw new UnauthenticatedError(
      `the coordinator at ${address} does not present the CA this join token pins (${caHash.slice(0, 16)}…; it presents ${seen.length > 0 ? seen.map((h) => `${h.slice(0, 16)}…`).join(', ') : 'no CA'}): the token is for another cluster, or someone is in the middle`,
    );
  }
  const caPem = ca.toString();
  const bad = checkServerCertificate(caPem, 'coordinator', chain[0].raw);
  if (bad) throw new UnauthenticatedError(`the server at ${address} is not a coordinator of the pinned cluster: ${bad.message}`);
  return caPem;
}
