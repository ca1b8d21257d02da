/**
 * Agents getting and renewing their certificates.
 *
 * Join: a valid join token and a CSR for node id X buy one certificate for `agent X`. The token
 * use and the record of the new serial are one transaction, so racing joins cannot overspend a
 * token or enrol one node id twice. A node id that already holds a live certificate is refused:
 * a token holder must not be able to take over an existing node's identity; an operator who
 * reinstalled a machine revokes the node first.
 *
 * Renewal: an agent that presents its own valid, unrevoked certificate gets a new one for the
 * same identity from a new CSR, with no token.
 */
import type { Etcd3 } from 'etcd3';
import { systemClock, type Clock } from '../../shared/clock';
import { ConflictError, FailedPreconditionError, InvalidArgumentError, NotFoundError } from '../../shared/errors';
import { isValidSegment, type Keyspace } from '../../shared/keyspace';
import type { ClusterCa } from '../../shared/pki/cluster-ca';
import { readCsr } from '../../shared/pki/cluster-ca';
import { PermissionDeniedError, UnauthenticatedError } from '../../shared/pki/errors';
import type { PeerIdentity } from '../../shared/pki/roles';
import { grantAgentAccess, removeAgentAccess } from '../../shared/etcd-auth';
import { runTxn, type Compare } from '../etcd-txn';
import { liveEntries, revokeAll, withIssued } from './issued-certificates';
import { decodeAgentRecord, type AgentRecord } from './pki-records';
import type { TokenStore } from './token-store';

const CAS_ATTEMPTS = 10;

export interface EnrolmentResult {
  certPem: string;
  /** The CA, so the agent stores what it will verify the coordinator with. */
  caPem: string;
  serial: string;
  notAfter: Date;
}

export interface AgentEnrolmentOptions {
  /** @default DEFAULT_VALIDITY_MS.agent (90 days) */
  validityMs?: number;
  clock?: Clock;
  /** Create the agent's etcd user and role at join, delete them at revocation (CoordinatorPkiOptions.etcdRbac). @default false */
  etcdRbac?: boolean;
}

export class AgentEnrolment {
  private readonly clock: Clock;

  constructor(
    private readonly etcd: Etcd3,
    private readonly keyspace: Keyspace,
    private readonly ca: ClusterCa,
    private readonly tokens: TokenStore,
    private readonly options: AgentEnrolmentOptions = {},
  ) {
    this.clock = options.clock ?? systemClock;
  }

  private async readRecord(nodeId: string): Promise<{ record: AgentRecord; compare: Compare }> {
    const key = this.keyspace.pkiAgent(nodeId);
    const kv = (await this.etcd.get(key).exec()).kvs[0];
    if (!kv) return { record: { nodeId, certificates: [] }, compare: { key, target: 'Create', op: '==', value: '0', reason: `node ${nodeId} is new` } };
    return { record: decodeAgentRecord(kv.value.toString()), compare: { key, target: 'Mod', op: '==', value: kv.mod_revision, reason: `node ${nodeId} record` } };
  }

  async join(tokenText: string, nodeId: string, csrPem: string): Promise<EnrolmentResult> {
    if (!isValidSegment(nodeId)) throw new InvalidArgumentError(`invalid node id ${JSON.stringify(nodeId)}: use 1-253 characters from A-Z a-z 0-9 . _ : - starting with a letter or digit`);
    // A bad CSR costs no token use.
    const csr = await readCsr(csrPem);
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const use = await this.tokens.prepareUse(tokenText);
      const { record, compare } = await this.readRecord(nodeId);
      const now = new Date(this.clock.now());
      const live = liveEntries(record.certificates, now);
      if (live.length > 0) {
        throw new FailedPreconditionError(
          `node ${nodeId} already holds a certificate (serial ${live[live.length - 1].serial}, valid until ${live[live.length - 1].notAfter}): if this machine was reinstalled, run clusterctl node revoke ${nodeId} first`,
        );
      }
      const issued = await this.ca.issueForPublicKey(csr.publicKey, { role: 'agent', name: nodeId, validityMs: this.options.validityMs, now });
      const next: AgentRecord = { nodeId, certificates: withIssued(record.certificates, issued, now) };
      const out = await runTxn(this.etcd, [use.compare, compare], [use.op, { kind: 'put', key: this.keyspace.pkiAgent(nodeId), value: JSON.stringify(next) }]);
      if (out.succeeded) {
        // After the token is spent: the user is what the certificate opens etcd with. Should this
        // fail, the agent's first etcd call is refused and the operator revokes and re-joins.
        if (this.options.etcdRbac) await grantAgentAccess(this.etcd, this.keyspace, nodeId);
        return { ...issued, caPem: this.ca.certPem };
      }
    }
    throw new ConflictError(`too many concurrent joins for node ${nodeId} or this token; try again`);
  }

  /**
   * A new certificate for the agent that presents `peer` (verified by TLS). Checks revocation in
   * etcd itself rather than in a watched copy, and that the serial is one this cluster issued to it.
   */
  async renew(peer: PeerIdentity, csrPem: string): Promise<EnrolmentResult> {
    if (peer.role !== 'agent') throw new PermissionDeniedError(`permission denied: only agents renew their certificates this way; you are ${peer.name} (${peer.role})`);
    const csr = await readCsr(csrPem);
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const { record, compare } = await this.readRecord(peer.name);
      const now = new Date(this.clock.now());
      const revokedKey = this.keyspace.pkiRevoked(peer.serial);
      if ((await this.etcd.get(revokedKey).string()) !== null) throw new UnauthenticatedError(`certificate ${peer.serial} of agent ${peer.name} has been revoked: join again with a token`);
      if (!liveEntries(record.certificates, now).some((e) => e.serial === peer.serial)) {
        throw new UnauthenticatedError(`certificate ${peer.serial} is not a live certificate of agent ${peer.name}: join again with a token`);
      }
      const issued = await this.ca.issueForPublicKey(csr.publicKey, { role: 'agent', name: peer.name, validityMs: this.options.validityMs, now });
      const next: AgentRecord = { nodeId: peer.name, certificates: withIssued(record.certificates, issued, now) };
      const out = await runTxn(
        this.etcd,
        [compare, { key: revokedKey, target: 'Create', op: '==', value: '0', reason: 'not revoked' }],
        [{ kind: 'put', key: this.keyspace.pkiAgent(peer.name), value: JSON.stringify(next) }],
      );
      if (out.succeeded) return { ...issued, caPem: this.ca.certPem };
      if (out.failed.some((c) => c.key === revokedKey)) throw new UnauthenticatedError(`certificate ${peer.serial} of agent ${peer.name} has been revoked: join again with a token`);
    }
    throw new ConflictError(`node ${peer.name}'s certificate record changed during renewal; try again`);
  }

  /** Revokes every live certificate of a node; the node can then join again with a token. */
  async revokeNode(nodeId: string, reason = 'node revoked by an operator'): Promise<string[]> {
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const key = this.keyspace.pkiAgent(nodeId);
      const kv = (await this.etcd.get(key).exec()).kvs[0];
      if (!kv) throw new NotFoundError(`node ${nodeId} has no certificates issued by this cluster`);
      const record = decodeAgentRecord(kv.value.toString());
      const { list, ops, serials } = revokeAll(this.keyspace, record.certificates, { role: 'agent', name: nodeId }, reason, new Date(this.clock.now()));
      const out = await runTxn(this.etcd, [{ key, target: 'Mod', op: '==', value: kv.mod_revision, reason: 'cas' }], [...ops, { kind: 'put', key, value: JSON.stringify({ nodeId, certificates: list }) }]);
      if (out.succeeded) {
        // etcd does not read our revocation list: without its user the certificate opens nothing.
        if (this.options.etcdRbac) await removeAgentAccess(this.etcd, nodeId);
        return serials;
      }
    }
    throw new ConflictError(`node ${nodeId}'s certificate record changed during revocation; try again`);
  }
}
