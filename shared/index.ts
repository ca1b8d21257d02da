/** The public surface of shared/: what agent, coordinator and clusterctl may use. */
export { Keyspace, DEFAULT_PREFIX, isValidSegment, type HistoryKey } from './keyspace';
export {
  ClusterError, InvalidArgumentError, NotFoundError, AlreadyExistsError, FailedPreconditionError, ConflictError,
  UnavailableError, DeadlineExceededError, CancelledError, NotLeaderError, InternalError,
  toGrpcStatus, fromGrpcError, isServiceError, errorMessage, safeText, MAX_STATUS_MESSAGE_CHARS,
} from './errors';
export { createLogger, isLogLevel, type Logger, type LogLevel, type LogFields, type LogSink } from './logger';
export { parseOptions, formatHelp, parseDuration, kebab, type OptionSpec, type OptionSpecs, type OptionValues, type ParseResult, type ParseContext } from './options';
export { loadProto, loadServiceClient, protoDir, protoPath, LOADER_OPTIONS, type LoadedProto, type ProtoGrpcType, type ServiceClientClass, type ServiceName } from './proto';
export { LIFECYCLE_STATES, TRANSITIONS, BUSY_STATES, isLifecycleState, isBusyState, canTransition, checkTransition, type LifecycleState } from './lifecycle';
export { parseSelector, matchesSelector, formatSelector, type Selector, type Requirement } from './selector';
export { summariseFacts, type Facts, type Disk, type NetworkInterface, type MemoryModule, type Gpu } from './facts';
export { describeFacts, describeFactsChange, factsDigest, type FactsDigest } from './facts-change';
export { decodeMember, decodeNode, decodeEvent, isUnreachableSignal, type MemberRecord, type NodeRecord, type EventRecord, type UnreachableSignal } from './records';
export { Backoff, sleep, type BackoffOptions } from './backoff';
export { systemClock, ManualClock, settle, type Clock, type Timer } from './clock';
export { ReconcileLoop, DEFAULT_DEBOUNCE_MS, type ReconcileLoopOptions, type ReconcileLoopState } from './reconcile-loop';
export { watchPrefixes, type PrefixWatch, type WatchOptions } from './etcd-watch';
export { pickLeader, decodeCandidate, isHostPort, type CandidateRecord, type ElectionCandidate, type LeaderPick } from './leader-record';
export { CAS_LOST, isRetryable, retryOnConflict, retryPolicy, type RetryOptions } from './retry';
export { createEtcdClient, endpointsToHosts, type EtcdClientOptions, type EtcdTls } from './etcd';
export { VERSION } from './version';
export {
  ROLES, USER_ROLES, isRole, isUserRole, UnauthenticatedError, PermissionDeniedError,
  parsePeerCertificate, verifyIssuedBy, caPublicKeyHash, parseJoinToken, formatJoinToken,
  parseCredentials, formatCredentials, authorize, serverCredentials, clientCredentials, peerIdentity, fetchPinnedCa,
  type Role, type UserRole, type PeerIdentity, type JoinToken, type Credentials, type Action, type ServerTlsOptions, type ClientTlsOptions,
} from './pki';
export {
  decodeHistoryEntry, diffNodes, encodeHistoryEntry, flattenFacts, historyToTrim, MAX_AT_AGE_MS, parseAtTime, recordChanges,
  type Difference, type DiffSide, type HistoryEntry, type HistoryKeyRef, type HistoryPolicy, type NodeDifferences,
} from './node-history';
