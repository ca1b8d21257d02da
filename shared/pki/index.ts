/**
 * The public surface of shared/pki: identities, join tokens, credentials and mutual TLS.
 * The CA itself (issuing, reading CSRs) is imported from './cluster-ca' by the programs that issue
 * certificates, so clusterctl does not load the issuing library at start-up; an agent makes its
 * key and CSR with './csr', which needs no such library.
 */
export { ROLES, USER_ROLES, isRole, isUserRole, type Role, type UserRole, type PeerIdentity } from './roles';
export { UnauthenticatedError, PermissionDeniedError } from './errors';
export { parsePeerCertificate, verifyIssuedBy, caPublicKeyHash, normaliseSerial, identityUri, renewalTime } from './peer-certificate';
export {
  TOKEN_PREFIX, generateJoinToken, formatJoinToken, parseJoinToken, hashTokenSecret, tokenSecretMatches, isTokenId, newTokenId,
  type JoinToken,
} from './join-token';
export { loadOrCreateClusterSecret, encryptCaKey, decryptCaKey, type EncryptedKey } from './cluster-secret';
export { formatCredentials, parseCredentials, DEFAULT_PKI_DIR, ADMIN_CREDENTIALS_FILE, type Credentials } from './credentials-file';
export { authorize, requirement, satisfies, shortMethod, knownMethods, type Action, type Requirement } from './authorization';
export {
  serverCredentials, clientCredentials, CLUSTER_CHANNEL_OPTIONS, peerIdentity, checkCall, checkServerCertificate, fetchPinnedCa, ClusterServerCredentials,
  type ServerTlsOptions, type ClientTlsOptions,
} from './grpc-credentials';
