/** The one shared test-helper module (etcd3's test/util.ts). */
export { EtcdServer, ETCD_BIN, useEtcd, type EtcdStartOptions, type EtcdSuite } from './etcd-server';
export { freePort } from './ports';
export { waitFor, expectReject, delay } from './wait';
export { ManagedProcess, spawnNode, run, clusterctl, REPO_ROOT, DIST, BIN, type RunResult, type SpawnOptions } from './processes';
export { TestCluster, AgentHandle, CoordinatorHandle, etcdSnapshot, snapshotDiff, AGENT_OWN_KEYS, wipeEtcd, type CtlNode, type EtcdEndpoint, type AgentStartOptions, type CoordinatorStartOptions, type TestClusterOptions } from './cluster';
export { startSystemdSandbox, SYSTEMD_BIN, type SystemdSandbox } from './systemd-sandbox';
export { buildRpmFixtures, copyIntoRoot, FIXTURE_PACKAGE, FIXTURE_VERSIONS, type RpmFixtures, type FixtureVersion } from './rpm-fixtures';
export { SandboxNode, type SandboxNodeOptions } from './sandbox-node';
export { testPki, TestPki, type TestIdentity } from './pki';
export { agentCredentials } from './agent-credentials';
export { SANDBOX_FACTS } from './facts';
export { TcpProxy } from './tcp-proxy';
export { KernelCut } from './kernel-cut';
export { EtcdCluster } from './etcd-cluster';
export { packagedAgentNodeFlags, packagedAgentEnv, AGENT_LAUNCHER, AGENT_NODE_FLAGS_VAR } from './launcher';
