/**
 * The bundle every lifecycle e2e test pushes, and readers of what a node's root and etcd hold.
 *
 * Bundle `app` version N: a directory, a file rendered from vars and facts, a command that
 * counts its executions (one line "N" appended to /opt/app/runs per run, its shell's pid in
 * /opt/app/cmd.pid, a line of output naming `vars.tag`, then `sleep {{ vars.sleep }}`, failing
 * when /fail-here exists in the node root; its undo writes /opt/app/undo.pid and sleeps the
 * same) and a systemd service on the node's real user manager (`app.service`, a shell loop).
 * The command has no guard, so it runs once per rendered spec: a re-run would show as a
 * second line for the same version.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { decodeNode, Keyspace, type NodeRecord } from '../../shared';
import { etcdSnapshot, waitFor } from '../helpers';

export const KS = new Keyspace();
export const BUNDLE = 'app';
export const GROUP = 'app';
export const SERVICE = 'app.service';

export function appBundle(version: number, options: { failIfMarker?: boolean } = {}): string {
  const fail = options.failIfMarker ?? true ? ' && test ! -f "$NODE_ROOT/fail-here"' : '';
  return `
name: ${BUNDLE}
version: "${version}"
variables:
  sleep: "0"
  tag: "none"
units:
  - { id: app-dir, kind: directory, path: /opt/app, mode: "0755" }
  - id: conf
    kind: file
    path: /opt/app/app.conf
    content: "release=${version} host={{ facts.hostname }}\\n"
    mode: "0644"
  - id: runs
    kind: command
    run: 'echo $$ > "$NODE_ROOT/opt/app/cmd.pid"; echo ${version} >> "$NODE_ROOT/opt/app/runs"; echo "job output: release ${version} tag={{ vars.tag }}"; sleep {{ vars.sleep }}${fail}'
    undo: 'echo $$ > "$NODE_ROOT/opt/app/undo.pid"; sleep {{ vars.sleep }}; rm -f "$NODE_ROOT/opt/app/runs" "$NODE_ROOT/opt/app/cmd.pid" "$NODE_ROOT/opt/app/undo.pid"'
    timeout: 120s
  - id: svc
    kind: systemd
    unit: ${SERVICE}
    content: |
      [Unit]
      Description=e2e lifecycle test service (release ${version})
      [Service]
      ExecStart=/bin/sh -c 'while :; do sleep 1; done'
      [Install]
      WantedBy=default.target
    enabled: true
    state: running
verify:
  - { id: svc-active, systemdActive: ${SERVICE} }
`;
}

/** Lines of /opt/app/runs in a node root: one per execution of the bundle's command, "N" per version. */
export function runsOf(root: string): string[] {
  const p = join(root, 'opt/app/runs');
  return existsSync(p) ? readFileSync(p, 'utf8').split('\n').filter((l) => l !== '') : [];
}

export function runsOfVersion(root: string, version: number): number {
  return runsOf(root).filter((l) => l === String(version)).length;
}

/** The pid the command wrote (its shell), or undefined before it ran. */
export function commandPid(root: string, file: 'cmd.pid' | 'undo.pid' = 'cmd.pid'): number | undefined {
  const p = join(root, 'opt/app', file);
  if (!existsSync(p)) return undefined;
  const n = Number(readFileSync(p, 'utf8').trim());
  return Number.isInteger(n) && n > 0 ? n : undefined;
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie still answers kill(0); it is not running anything.
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

export async function nodeRecord(client: Etcd3, id: string): Promise<NodeRecord | undefined> {
  const v = await client.get(KS.node(id)).string();
  return v === null ? undefined : decodeNode(KS.node(id), v);
}

export async function requireNode(client: Etcd3, id: string): Promise<NodeRecord> {
  const n = await nodeRecord(client, id);
  if (!n) throw new Error(`no node record for ${id}`);
  return n;
}

/** Every key and value under the cluster prefix except the agents' own (membership, facts): what the coordinator owns. */
export async function coordinatorSnapshot(client: Etcd3): Promise<Record<string, string>> {
  const all = await etcdSnapshot(client, KS.prefix);
  for (const k of Object.keys(all)) {
    if (k.startsWith(KS.membersPrefix()) || k.startsWith(KS.factsPrefix()) || k.startsWith(KS.electionPrefix())) delete all[k];
  }
  return all;
}

/** Waits until every node is `state` (default Discovered) and its agent holds a stream to the leader. */
export async function waitNodes(client: Etcd3, ids: readonly string[], state = 'Discovered', timeoutMs = 45_000): Promise<NodeRecord[]> {
  return waitFor(`nodes ${ids.join(', ')} ${state} and connected`, async () => {
    const out: NodeRecord[] = [];
    for (const id of ids) {
      const n = await nodeRecord(client, id);
      if (n?.state !== state || !n.connected) return undefined;
      out.push(n);
    }
    return out;
  }, { timeoutMs, intervalMs: 200 });
}
