/**
 * The plan of `clusterctl plan/apply`: a PURE diff of the desired configuration (a parsed
 * cluster file) against what is stored (bundles, groups, files, nodes), tested by table.
 *
 * - bundles: versions to push (new), unchanged (identical content stored), or a conflict
 *   (a stored version with other content: versions are immutable, bump it);
 * - groups: to create, to update (with field-by-field diffs), unchanged; groups stored but not
 *   in the file are left alone (the file is not a full inventory of groups);
 * - nodes: members of a group whose bundle version changes (the next upgrade job moves them),
 *   and Discovered nodes that a new auto-commission rule would pick up (the leader's
 *   auto-commission reconciler uses the same planAutoCommission).
 *
 * Problems that make the configuration impossible (a group naming a bundle version that is
 * neither stored nor in the file, a `source` file not uploaded, a bundle conflict) are listed;
 * the caller refuses to apply while there are any.
 */
import type { Facts, NodeRecord } from '../../shared';
import { canonicalJson, missingVariables, templateReferences, type Bundle } from '../../shared/bundle';
import { firstViolation, violationMessage } from '../../shared/path-allowlist';
import type { GroupRecord } from '../config/group-store';
import { planAutoCommission } from '../reconcile/auto-commission';
import type { ClusterFile, GroupSpec } from '../../shared/cluster-file';
import { mergeVariables, outOfDateReasons, renderInputs } from '../../shared/render-inputs';

export interface StoredConfig {
  /** "name@version" → canonical JSON of the stored bundle. */
  bundles: ReadonlyMap<string, string>;
  groups: ReadonlyMap<string, GroupRecord>;
  /** Names of stored distributed files. */
  files: ReadonlySet<string>;
  nodes: readonly { record: NodeRecord; facts?: Partial<Facts> }[];
  /** Ids of unfinished jobs (a node they hold is not an auto-commission candidate). */
  activeJobs: ReadonlySet<string>;
  /** The cluster globals (`clusterctl global set`); none when absent. */
  globals?: Readonly<Record<string, string>>;
}

export interface FieldChange {
  field: string;
  from: string;
  to: string;
}

export interface BundlePlan {
  ref: string;
  action: 'push' | 'unchanged';
  units: number;
}

export interface GroupPlan {
  name: string;
  action: 'create' | 'update' | 'unchanged';
  changes: FieldChange[];
}

export interface NodeUpgrade {
  nodeId: string;
  group: string;
  from: string;
  to: string;
  /** What differs between what the node applied and what the group now renders (shared/render-inputs.ts). */
  reasons: string[];
}

export interface NodeAutoCommission {
  nodeId: string;
  group: string;
}

export interface PlanResult {
  bundles: BundlePlan[];
  groups: GroupPlan[];
  upgrades: NodeUpgrade[];
  autoCommission: NodeAutoCommission[];
  problems: string[];
  hasChanges: boolean;
}

function show(v: string | number | readonly string[] | undefined): string {
  if (v === undefined || v === '' || (Array.isArray(v) && v.length === 0)) return '(none)';
  return typeof v === 'string' || typeof v === 'number' ? String(v) : v.join(', ');
}

/** Field diffs of a group (stored → desired), in a fixed order. Pure. */
export function groupChanges(stored: GroupRecord | undefined, desired: GroupSpec): FieldChange[] {
  const out: FieldChange[] = [];
  const cmp = (field: string, from: string | number | readonly string[] | undefined, to: string | number | readonly string[] | undefined): void => {
    const a = show(from);
    const b = show(to);
    if (a !== b) out.push({ field, from: a, to: b });
  };
  cmp('bundle', stored ? `${stored.bundle}@${stored.version}` : undefined, `${desired.bundle}@${desired.version}`);
  const keys = [...new Set([...Object.keys(stored?.variables ?? {}), ...Object.keys(desired.variables)])].sort();
  for (const k of keys) cmp(`variables.${k}`, stored?.variables[k], desired.variables[k]);
  cmp('minSize', stored?.minSize ?? 0, desired.minSize ?? 0);
  cmp('dependsOn', [...(stored?.dependsOn ?? [])].sort(), [...(desired.dependsOn ?? [])].sort());
  cmp('verifySchedule', stored?.verifySchedule, desired.verifySchedule);
  cmp('repairPolicy', stored ? stored.repairPolicy ?? 'report' : undefined, desired.repairPolicy ?? 'report');
  cmp('autoCommission', (stored?.autoCommission ?? []).map((r) => r.selector), (desired.autoCommission ?? []).map((r) => r.selector));
  cmp('soakMs', stored?.soakMs ?? 0, desired.soakMs ?? 0);
  cmp('allowedPaths', stored?.allowedPaths ?? [], desired.allowedPaths ?? []);
  return out;
}

/** Desired vs stored. Pure: same inputs, same plan. */
/** A stored bundle's canonical JSON as a Bundle; undefined when absent or unreadable (judged elsewhere). */
function storedBundle(json: string | undefined): Bundle | undefined {
  if (json === undefined) return undefined;
  try {
    const b = JSON.parse(json) as Partial<Bundle> | null;
    return b && Array.isArray(b.units) ? { variables: {}, verify: [], ...b } as Bundle : undefined;
  } catch {
    return undefined;
  }
}

export function planConfig(desired: ClusterFile, stored: StoredConfig): PlanResult {
  const problems: string[] = [];
  const inFile = new Map<string, unknown>(desired.bundles.map((b) => [`${b.name}@${b.version}`, b]));

  const bundles: BundlePlan[] = desired.bundles.map((b) => {
    const ref = `${b.name}@${b.version}`;
    const have = stored.bundles.get(ref);
    if (have !== undefined && have !== canonicalJson(b)) {
      problems.push(`bundle ${ref} is stored with different content; bundle versions are immutable: bump the version in the file`);
    }
    return { ref, action: have === undefined ? 'push' : 'unchanged', units: b.units.length };
  });
  for (const b of desired.bundles) {
    const missing = b.units.flatMap((u) => (u.kind === 'file' && u.source !== undefined && !stored.files.has(u.source) ? [u.source] : []));
    for (const m of [...new Set(missing)]) problems.push(`bundle ${b.name}@${b.version}: source file "${m}" is not uploaded (clusterctl files upload PATH --name ${m})`);
  }

  // The same checks as `bundle push` and `group set`: refused at plan, not when a node renders it.
  for (const b of desired.bundles) {
    for (const p of templateReferences(b).problems) problems.push(`bundle ${b.name}@${b.version}: ${p}`);
  }
  const groupNames = new Set([...desired.groups.map((g) => g.name), ...stored.groups.keys()]);
  const groups: GroupPlan[] = desired.groups.map((g) => {
    const ref = `${g.bundle}@${g.version}`;
    if (!inFile.has(ref) && !stored.bundles.has(ref)) {
      problems.push(`group ${g.name}: bundle ${ref} is neither stored nor listed under bundles`);
    }
    const b = (inFile.get(ref) as Bundle | undefined) ?? storedBundle(stored.bundles.get(ref));
    const unset = b ? missingVariables(templateReferences(b), b.variables ?? {}, g.variables ?? {}) : [];
    if (unset.length > 0) problems.push(`group ${g.name}: bundle ${ref} uses variables that neither the bundle defines nor the group sets: ${unset.join(', ')}`);
    const outside = b ? firstViolation(b, g.allowedPaths ?? []) : undefined;
    if (outside) problems.push(`group ${g.name}: bundle ${ref} refused: ${violationMessage(outside, g.allowedPaths ?? [])}`);
    for (const d of g.dependsOn ?? []) if (!groupNames.has(d)) problems.push(`group ${g.name}: depends on group ${d}, which is neither stored nor in the file`);
    const have = stored.groups.get(g.name);
    const changes = groupChanges(have, g);
    return { name: g.name, action: !have ? 'create' : changes.length > 0 ? 'update' : 'unchanged', changes: have ? changes : [] };
  });

  // Nodes out of date under the desired groups: what they applied (bundle version, variables,
  // facts the templates read) differs from what their group would render now. A node that
  // applied nothing counts only when its group's bundle version changes.
  const upgrades: NodeUpgrade[] = [];
  for (const g of desired.groups) {
    const to = `${g.bundle}@${g.version}`;
    const have = stored.groups.get(g.name);
    const versionChanges = !have || `${have.bundle}@${have.version}` !== to;
    const b = (inFile.get(to) as Bundle | undefined) ?? storedBundle(stored.bundles.get(to));
    for (const { record: n, facts } of stored.nodes) {
      if (n.group !== g.name) continue;
      const from = n.appliedConfig ?? n.desiredConfig ?? '';
      let reasons: string[];
      if (n.appliedConfig && b) {
        const inputs = renderInputs(to, b, mergeVariables(b.variables ?? {}, stored.globals ?? {}, g.variables ?? {}), facts);
        reasons = outOfDateReasons(n.appliedConfig, n.appliedInputs, inputs, b);
      } else {
        reasons = versionChanges && from !== to ? [`bundle ${from || '(none)'} → ${to}`] : [];
      }
      if (reasons.length > 0) upgrades.push({ nodeId: n.id, group: g.name, from: from || '(none)', to, reasons });
    }
  }
  upgrades.sort((a, b) => (a.nodeId < b.nodeId ? -1 : 1));

  // Discovered nodes a new rule would auto-commission (and that the current rules would not).
  const now = planAutoCommission({ nodes: stored.nodes, groups: [...stored.groups.values()], activeJobs: stored.activeJobs });
  const merged = new Map(stored.groups);
  for (const g of desired.groups) merged.set(g.name, { ...g });
  const next = planAutoCommission({ nodes: stored.nodes, groups: [...merged.values()], activeJobs: stored.activeJobs });
  const before = new Map<string, string>();
  for (const [group, ids] of now) for (const id of ids) before.set(id, group);
  const autoCommission: NodeAutoCommission[] = [];
  for (const [group, ids] of next) for (const id of ids) if (before.get(id) !== group) autoCommission.push({ nodeId: id, group });
  autoCommission.sort((a, b) => (a.nodeId < b.nodeId ? -1 : 1));

  const hasChanges = bundles.some((b) => b.action === 'push') || groups.some((g) => g.action !== 'unchanged');
  return { bundles, groups, upgrades, autoCommission, problems, hasChanges };
}

/** The plan as an operator reads it: one change per line, then a summary line. Pure. */
export function formatPlan(plan: PlanResult): string {
  const lines: string[] = [];
  for (const b of plan.bundles) if (b.action === 'push') lines.push(`+ bundle ${b.ref}: push (${b.units} unit${b.units === 1 ? '' : 's'})`);
  for (const g of plan.groups) {
    if (g.action === 'create') lines.push(`+ group ${g.name}: create`);
    else if (g.action === 'update') {
      lines.push(`~ group ${g.name}: update`);
      for (const c of g.changes) lines.push(`    ${c.field}: ${c.from} → ${c.to}`);
    }
  }
  for (const u of plan.upgrades) {
    const why = u.reasons.filter((r) => !r.startsWith('bundle '));
    lines.push(`  node ${u.nodeId} (group ${u.group}): ${u.from} → ${u.to}${why.length ? ` (${why.join(', ')})` : ''}, by the next upgrade job`);
  }
  for (const a of plan.autoCommission) lines.push(`  node ${a.nodeId}: newly matches auto-commission of group ${a.group}`);
  for (const p of plan.problems) lines.push(`! ${p}`);
  const pushes = plan.bundles.filter((b) => b.action === 'push').length;
  const creates = plan.groups.filter((g) => g.action === 'create').length;
  const updates = plan.groups.filter((g) => g.action === 'update').length;
  if (!plan.hasChanges && plan.problems.length === 0 && plan.upgrades.length === 0) lines.push('No changes: the stored configuration matches.');
  else {
    lines.push(
      `Plan: ${pushes} bundle version(s) to push, ${creates} group(s) to create, ${updates} to update; ` +
        `${plan.upgrades.length} node(s) to upgrade, ${plan.autoCommission.length} to auto-commission` +
        (plan.problems.length ? `; ${plan.problems.length} problem(s) block apply` : ''),
    );
  }
  return lines.join('\n') + '\n';
}
