/** The public surface of agent/: what the integrator, tests and benchmarks may use. */
export { Agent, type AgentSettings, type AgentDependencies } from './agent';
export { AGENT_OPTIONS, AGENT_DEFAULTS, parseAgentOptions, compileAgentConfig, agentHelp, type AgentOptions, type AgentConfig } from './options';
export { resolveIdentity, systemIdentityEnvironment, type NodeIdentity, type IdentityEnvironment, type IdentityInputs } from './identity';
export { collectFacts, systemFactsProvider } from './facts-collector';
export { childFactsProvider, collectFactsInChild, factsFingerprint, primaryAddress, type FactsProvider } from './facts-provider';
export { LeaseMembership, membershipTimings, DEFAULT_LEASE_TTL_SECONDS, type MembershipStatus, type MembershipTimings } from './lease-membership';
export {
  CoordinatorLink, AGENT_CHANNEL_OPTIONS, EMPTY_APPLIED, trustRefusal,
  type AppliedState, type AppliedStateProvider, type LinkTimings, type LinkConnected,
} from './coordinator-link';
export {
  NodeCertificate, NodeCertificateFiles, StaticCredentials, NotJoinedError, NOT_JOINED_HINT, checkIdentity, renewalDue,
  type CredentialSource, type TlsIdentity, type NodeCertificateOptions,
} from './node-certificate';
export { EtcdLeaderSource, StaticLeaderSource, type LeaderSource, type LeaderInfo } from './leader-discovery';
export { CommandRunner } from './command-runner';
export {
  UnsupportedCommandHandler, CommandResults, runCommand, commandKindName,
  type CommandHandler, type CommandResultBody, type CommandOutcome, type ProgressUpdate, type ReportProgress,
} from './command-handler';
