/**
 * Who is calling, for handlers: the identity comes from the client certificate the TLS stack
 * verified (the server interceptor already refused calls without one), never from a field of
 * the request. Handlers record `actorOf` in the audit trail and check the request facts the
 * interceptor cannot see (a job's kind, a bundle's unit kinds) with `authorizeAction`.
 */
import { authorize, peerIdentity, type Action, type PeerIdentity } from '../shared/pki';

/** What a handler gets from grpc-js: the call's TLS auth context. */
export type AuthenticatedCall = Parameters<typeof peerIdentity>[0];

/** The audit name of an identity: `user:<name>`, `node:<id>` or `coordinator:<name>`. */
export function actorName(peer: Pick<PeerIdentity, 'role' | 'name'>): string {
  if (peer.role === 'agent') return `node:${peer.name}`;
  if (peer.role === 'coordinator') return `coordinator:${peer.name}`;
  return `user:${peer.name}`;
}

export function actorOf(call: AuthenticatedCall): string {
  return actorName(peerIdentity(call));
}

/**
 * Throws PermissionDeniedError (naming the role needed) unless the caller may do `action`;
 * returns the caller. The interceptor checked the method alone; this adds the request's facts.
 */
export function authorizeAction(call: AuthenticatedCall, action: Action): PeerIdentity {
  const peer = peerIdentity(call);
  authorize(peer, action);
  return peer;
}
