/** The public surface of coordinator/: what main.ts, tests and benchmarks use. */
export { Coordinator, type CoordinatorOptions, type CoordinatorPkiOptions, type StopOptions } from './coordinator';
export { actorName, actorOf, authorizeAction, type AuthenticatedCall } from './caller';
export { LeaderElection, type LeaderInfo, type LeaderElectionOptions, type LeaderElectionEvents } from './leader-election';
export { EventLog, type EventInput, type CommitRequest, type CommitOutcome, type EventLogOptions } from './event-log';
export { NodeStore, newNodeRecord, type VersionedNode, type NodeChange, type NodeMutator, type Fence, type MutationResult, type MutateOptions } from './node-store';
export { AgentStreams, type AgentStream, type AgentStreamsEvents } from './agent-streams';
export { InventoryReconciler, planInventory, applyAction, changedAgentFields, type InventoryAction, type InventoryInput, type PassResult } from './inventory-reconciler';
export { createAgentServiceHandlers, type AgentServiceOptions, type Leadership } from './agent-service';
export { createClusterServiceHandlers, type ClusterServiceOptions } from './cluster-service';
export { toNodeView, parseFacts } from './node-view';
export { GrpcServer, parseHostPort, AGENT_SERVICE_NAME, CLUSTER_SERVICE_NAME } from './grpc-server';
export { runTxn, readPrefixes, readKeys, holds, type Compare, type TxnOp, type TxnOutcome, type KeyState } from './etcd-txn';
export { parseCoordinatorArgs, compileSettings, COORDINATOR_OPTIONS, DEFAULT_SETTINGS, type CoordinatorConfig, type CoordinatorSettings } from './options';
