/**
 * The Node/V8 flags and the environment (glibc malloc settings) the packaged launcher
 * (packaging/bin/cluster-agent) gives the agent by default, read from the launcher itself so that a benchmark or a test runs the agent as an
 * operator's systemd unit does, and cannot drift from what is shipped.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './processes';

export const AGENT_LAUNCHER = join(REPO_ROOT, 'packaging', 'bin', 'cluster-agent');
/** The environment variable that replaces the launcher's default flags. */
export const AGENT_NODE_FLAGS_VAR = 'CLUSTER_AGENT_NODE_FLAGS';

/** The launcher's default flags: its `: "${CLUSTER_AGENT_NODE_FLAGS=...}"` line, split on spaces. */
export function packagedAgentNodeFlags(launcher = AGENT_LAUNCHER): string[] {
  const m = new RegExp(`^: "\\$\\{${AGENT_NODE_FLAGS_VAR}=([^}"]*)\\}"$`, 'm').exec(readFileSync(launcher, 'utf8'));
  if (!m) throw new Error(`${launcher}: no default ${AGENT_NODE_FLAGS_VAR} line`);
  return m[1].split(' ').filter((f) => f !== '');
}

/**
 * The variables the launcher sets and exports besides the flags: its other `: "${NAME=value}"`
 * lines (none in a launcher from before they were added).
 */
export function packagedAgentEnv(launcher = AGENT_LAUNCHER): Record<string, string> {
  const env: Record<string, string> = {};
  for (const m of readFileSync(launcher, 'utf8').matchAll(/^: "\$\{(\w+)=([^}"]*)\}"$/gm)) {
    if (m[1] !== AGENT_NODE_FLAGS_VAR) env[m[1]] = m[2];
  }
  return env;
}
