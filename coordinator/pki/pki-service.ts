/**
 * PkiService: agents join (the one call open without a certificate: the token is the proof)
 * and renew; admins manage join tokens, users and revocations. Which role may call what is
 * the role table's (shared/pki/authorization.ts), checked by the server interceptor before a
 * handler runs; every change is recorded in the event log under the caller's certificate identity.
 */
import { errorMessage, InvalidArgumentError, isUserRole, type Logger } from '../../shared';
import { peerIdentity } from '../../shared/pki';
import type { PkiServiceHandlers } from '../../generated/cluster/v1/PkiService';
import type { CertificateResponse } from '../../generated/cluster/v1/CertificateResponse';
import type { JoinTokenInfo } from '../../generated/cluster/v1/JoinTokenInfo';
import { actorOf } from '../caller';
import type { EventInput, EventLog } from '../event-log';
import { unary } from '../unary-handler';
import type { AgentEnrolment, EnrolmentResult } from './agent-enrolment';
import type { TokenRecord } from './pki-records';
import type { TokenStore } from './token-store';
import type { UserStore } from './user-store';

const DAY_MS = 24 * 60 * 60 * 1000;

/** The stores behind the service; they exist once the CA is loaded (Coordinator.start). */
export interface PkiParts {
  tokens: TokenStore;
  enrolment: AgentEnrolment;
  users: UserStore;
  /** Coordinator endpoint(s) written into a new user's credentials file. */
  endpoints(): string[];
}

export interface PkiServiceOptions {
  /** The stores, or an error while this replica has not loaded the CA yet. */
  parts(): PkiParts;
  events: EventLog;
  logger: Logger;
}

/** Ten years: long past any operator's tenure, and a date every X.509 encoder handles. */
const MAX_USER_VALIDITY_DAYS = 3650;

export function toTokenInfo(t: TokenRecord): JoinTokenInfo {
  return {
    id: t.id, createdAt: t.createdAt, expiresAt: t.expiresAt ?? '', usesLeft: t.usesLeft ?? -1, description: t.description, revoked: t.revoked,
  };
}

function toCertificate(r: EnrolmentResult): CertificateResponse {
  return { certificate: r.certPem, ca: r.caPem, serial: r.serial, notAfter: r.notAfter.toISOString() };
}

export function createPkiServiceHandlers(options: PkiServiceOptions): PkiServiceHandlers {
  const log = options.logger.child({ component: 'pki-service' });
  /** The audit record of a change; a failure to write it is logged, the change stands. */
  const record = async (event: EventInput): Promise<void> => {
    try {
      await options.events.commit({ compares: [], ops: [], event });
    } catch (err) {
      log.warn('could not record a pki event', { type: event.type, actor: event.actor, err: errorMessage(err) });
    }
  };

  return {
    Join: unary(async (req) => {
      const issued = await options.parts().enrolment.join(req.token, req.nodeId, req.csr);
      log.info('agent joined', { nodeId: req.nodeId, serial: issued.serial });
      await record({ type: 'pki.joined', nodeId: req.nodeId, message: `node ${req.nodeId} joined with a token (certificate ${issued.serial})`, actor: `node:${req.nodeId}` });
      return toCertificate(issued);
    }),
    Renew: unary(async (req, call) => {
      const peer = peerIdentity(call);
      const issued = await options.parts().enrolment.renew(peer, req.csr);
      log.info('certificate renewed', { nodeId: peer.name, serial: issued.serial });
      return toCertificate(issued);
    }),
    CreateToken: unary(async (req, call) => {
      const ttlMs = req.neverExpires ? null : req.ttlSeconds > 0 ? req.ttlSeconds * 1000 : undefined;
      const { token, record: t } = await options.parts().tokens.create({ ttlMs, uses: req.uses > 0 ? req.uses : null, description: req.description });
      await record({ type: 'pki.token.created', message: `join token ${t.id} created${t.expiresAt ? `, expires ${t.expiresAt}` : ', never expires'}`, actor: actorOf(call) });
      return { token, info: toTokenInfo(t) };
    }),
    ListTokens: unary(async () => ({ tokens: (await options.parts().tokens.list()).map(toTokenInfo) })),
    RevokeToken: unary(async (req, call) => {
      const t = await options.parts().tokens.revoke(req.id.trim());
      await record({ type: 'pki.token.revoked', message: `join token ${t.id} revoked`, actor: actorOf(call) });
      return toTokenInfo(t);
    }),
    AddUser: unary(async (req, call) => {
      const role = req.role.trim();
      if (!isUserRole(role)) throw new InvalidArgumentError(`invalid role ${JSON.stringify(req.role)}: use viewer, operator or admin`);
      // Found by the fuzzer: a validity of 2^32 days made an invalid date (INTERNAL).
      if (req.validityDays > MAX_USER_VALIDITY_DAYS) throw new InvalidArgumentError(`a user certificate is valid for at most ${MAX_USER_VALIDITY_DAYS} days`);
      const parts = options.parts();
      const added = await parts.users.add(req.name.trim(), role, {
        endpoints: parts.endpoints(), ...(req.validityDays > 0 ? { validityMs: req.validityDays * DAY_MS } : {}),
      });
      await record({ type: 'pki.user.added', message: `user ${added.record.name} added with role ${role} (certificate ${added.serial})`, actor: actorOf(call) });
      return { credentials: added.credentials, serial: added.serial, notAfter: added.notAfter.toISOString() };
    }),
    ListUsers: unary(async () => ({
      users: (await options.parts().users.list()).map((u) => ({
        name: u.name, role: u.role, createdAt: u.createdAt, revoked: u.revoked, serials: u.certificates.map((c) => c.serial),
      })),
    })),
    RevokeUser: unary(async (req, call) => {
      const name = req.name.trim();
      const { serials } = await options.parts().users.revoke(name, req.reason.trim() || undefined);
      await record({ type: 'pki.user.revoked', message: `user ${name} revoked (${serials.length} certificate(s))${req.reason.trim() ? `: ${req.reason.trim()}` : ''}`, actor: actorOf(call) });
      return { serials };
    }),
    RevokeNode: unary(async (req, call) => {
      const nodeId = req.nodeId.trim();
      const serials = await options.parts().enrolment.revokeNode(nodeId, req.reason.trim() || undefined);
      await record({
        type: 'pki.node.revoked', nodeId, message: `node ${nodeId}'s certificates revoked (${serials.length})${req.reason.trim() ? `: ${req.reason.trim()}` : ''}`, actor: actorOf(call),
      });
      return { serials };
    }),
  };
}
