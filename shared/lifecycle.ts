/**
 * Node lifecycle states and the one transition table (../../shared/DESIGN.md, "Node lifecycle").
 * Every transition anywhere in the system is checked by `checkTransition`; an illegal move is
 * refused with a reason and nothing is written.
 */
import { FailedPreconditionError } from './errors';

export const LIFECYCLE_STATES = [
  'New',
  'Discovered',
  'Commissioning',
  'Commissioned',
  'Upgrading',
  'Upgraded',
  'Decommissioning',
  'Decommissioned',
  'Failed',
  'Cancelled',
] as const;

export type LifecycleState = (typeof LIFECYCLE_STATES)[number];

export function isLifecycleState(s: string): s is LifecycleState {
  return (LIFECYCLE_STATES as readonly string[]).includes(s);
}

/** States in which a job is acting on the node. */
export const BUSY_STATES: readonly LifecycleState[] = ['Commissioning', 'Upgrading', 'Decommissioning'];

export function isBusyState(s: LifecycleState): boolean {
  return BUSY_STATES.includes(s);
}

/**
 * Allowed moves: from → to. Read as "a node in <from> may go to any of <to>".
 * Failed keeps every way out open (Contiv #114, #158: no dead ends). Cancelled is where the
 * operator's cancel of a commission, upgrade or decommission leaves the node: not a failure of
 * the node, but it may have been stopped half-way, so every way out is open as from Failed
 * (commission it again, upgrade it, or decommission what was applied). Upgrading → Commissioned
 * is a rolled-back upgrade (coordinator/jobs/job-rollback.ts): the node is back on the version
 * it was commissioned with.
 */
export const TRANSITIONS: Readonly<Record<LifecycleState, readonly LifecycleState[]>> = {
  New: ['Discovered'],
  Discovered: ['Commissioning'],
  Commissioning: ['Commissioned', 'Failed', 'Cancelled'],
  Commissioned: ['Upgrading', 'Decommissioning'],
  Upgrading: ['Upgraded', 'Failed', 'Cancelled', 'Commissioned'],
  Upgraded: ['Upgrading', 'Decommissioning'],
  Decommissioning: ['Decommissioned', 'Failed', 'Cancelled'],
  Decommissioned: ['Commissioning'],
  Failed: ['Commissioning', 'Upgrading', 'Decommissioning'],
  Cancelled: ['Commissioning', 'Upgrading', 'Decommissioning'],
};

export function canTransition(from: LifecycleState, to: LifecycleState): boolean {
  return TRANSITIONS[from].includes(to);
}

/** Throws FailedPreconditionError explaining why `from → to` is not allowed. */
export function checkTransition(nodeId: string, from: LifecycleState, to: LifecycleState): void {
  if (canTransition(from, to)) return;
  const allowed = TRANSITIONS[from];
  throw new FailedPreconditionError(
    `node ${nodeId} is ${from}; it cannot move to ${to}` +
      (allowed.length ? ` (from ${from} it can move to ${allowed.join(', ')})` : ''),
  );
}
