/** The coordinator's side of the cluster PKI: CA bootstrap, join tokens, agents, users, revocation. */
export { bootstrapPki, loadOrCreateCa, writeFirstStartFiles, DEFAULT_PKI_DIR, ADMIN_USER, type PkiBootstrapOptions, type PkiBootstrapResult, type LoadedCa } from './ca-bootstrap';
export { TokenStore, DEFAULT_TOKEN_TTL_MS, type CreateTokenOptions, type TokenUse } from './token-store';
export { AgentEnrolment, type AgentEnrolmentOptions, type EnrolmentResult } from './agent-enrolment';
export { UserStore, type AddUserOptions } from './user-store';
export { RevocationSet, revokeOp, type RevocationListener } from './revocation-set';
export type { CaRecord, TokenRecord, AgentRecord, UserRecord, RevokedRecord, IssuedSerial } from './pki-records';
export { createPkiServiceHandlers, toTokenInfo, type PkiParts, type PkiServiceOptions } from './pki-service';
