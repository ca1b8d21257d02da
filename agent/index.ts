/** The public surface of agent/: what the integrator, tests and benchmarks may use. */
export { Agent, type AgentSettings, type AgentDependencies } from './agent';
export { AGENT_OPTIONS, parseAgentOptions, agentHelp, type AgentOptions } from './options';
export { resolveIdentity, systemIdentityEnvironment, type NodeIdentity, type IdentityEnvironment, type IdentityInputs } from './identity';
export { collectFacts, systemFactsProvider, factsFingerprint, primaryAddress, type FactsProvider } from './facts-collector';
export { LeaseMembership, membershipTimings, DEFAULT_LEASE_TTL_SECONDS, type MembershipStatus, type MembershipTimings } from './lease-membership';
export {
  CoordinatorLink, EtcdLeaderSource, StaticLeaderSource, chooseLeader, AGENT_CHANNEL_OPTIONS, EMPTY_APPLIED,
  type LeaderSource, type LeaderInfo, type ElectionCandidate, type AppliedState, type AppliedStateProvider,
} from './coordinator-link';
export {
  UnsupportedCommandHandler, CommandResults, runCommand, commandKindName,
  type CommandHandler, type CommandResultBody, type CommandOutcome, type ProgressUpdate, type ReportProgress,
} from './command-handler';
