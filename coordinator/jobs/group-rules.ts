/**
 * Group rules (DESIGN.md: Contiv's master/worker checks made general), a pure function:
 * a group may declare a minimum size (of nodes in service) and groups it depends on (which
 * must have at least one node in service). An operation that would break a rule is refused
 * unless forced, and the refusal says which rule and what --force would override.
 */
import type { LifecycleState } from '../../shared';

export interface GroupRules {
  /** Nodes in service (Commissioned/Upgraded) the group must keep; decommission below it is refused. */
  minSize?: number;
  /** Groups that need a node in service before this group's nodes are commissioned. */
  dependsOn?: string[];
}

export interface NodeInGroup {
  id: string;
  group?: string;
  state: LifecycleState;
}

export type Operation = 'commission' | 'upgrade' | 'decommission' | 'verify' | 'repair';

const IN_SERVICE: readonly LifecycleState[] = ['Commissioned', 'Upgraded', 'Upgrading'];

export function inService(state: LifecycleState): boolean {
  return IN_SERVICE.includes(state);
}

/**
 * Returns the rule violations an operation on `targets` in group `group` would cause; empty
 * when it is allowed. `nodes` is every node of the cluster (for dependency and size counts).
 */
export function checkGroupRules(
  op: Operation,
  group: string,
  rules: GroupRules,
  targets: readonly string[],
  nodes: readonly NodeInGroup[],
): string[] {
  const violations: string[] = [];
  const targetSet = new Set(targets);
  if (op === 'commission') {
    for (const dep of rules.dependsOn ?? []) {
      const ready = nodes.some((n) => n.group === dep && inService(n.state) && !targetSet.has(n.id));
      if (!ready) violations.push(`group ${group} depends on group ${dep}, which has no commissioned node`);
    }
  }
  if (op === 'decommission' && rules.minSize !== undefined) {
    const remaining = nodes.filter((n) => n.group === group && inService(n.state) && !targetSet.has(n.id)).length;
    if (remaining < rules.minSize) {
      violations.push(`group ${group} needs at least ${rules.minSize} node(s) in service; decommissioning ${targets.length} leaves ${remaining}`);
    }
  }
  return violations;
}

/** Dependents check for decommission: groups that depend on `group` and would lose their last dependency. */
export function checkDependents(
  group: string,
  allRules: Readonly<Record<string, GroupRules>>,
  targets: readonly string[],
  nodes: readonly NodeInGroup[],
): string[] {
  const targetSet = new Set(targets);
  const left = nodes.filter((n) => n.group === group && inService(n.state) && !targetSet.has(n.id)).length;
  if (left > 0) return [];
  const out: string[] = [];
  for (const [other, rules] of Object.entries(allRules)) {
    if (!(rules.dependsOn ?? []).includes(group)) continue;
    const dependents = nodes.filter((n) => n.group === other && inService(n.state)).length;
    if (dependents > 0) out.push(`group ${other} depends on group ${group}; decommissioning its last node(s) would break ${dependents} node(s) of ${other}`);
  }
  return out;
}
