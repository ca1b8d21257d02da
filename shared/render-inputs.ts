/**
 * What a node's configuration is rendered from, and the three questions asked of it
 * (docs/operations.md, "Desired, applied and drift"):
 *
 * - desired: the group's bundle version AND the variables it renders with (the bundle's
 *   defaults < cluster globals < the group's variables) AND the facts of the node its templates
 *   read;
 * - applied: the same inputs as the last commission, upgrade or repair actually sent, kept on
 *   the node record (`appliedInputs`), including that job's extra vars (`-e`);
 * - out of date: applied differs from desired (a job with -e leaves the node out of date until
 *   an upgrade without -e); drift: the machine differs from what was applied (the agent's
 *   verify, which renders with the applied inputs, so extra vars are never drift).
 *
 * Only the variables and facts the bundle's templates use are compared: a group variable no
 * template reads changes nothing on a node. Pure functions, tested by table.
 */
import { templateReferences } from './bundle/render-template';
import type { Bundle } from './bundle/types';
import { comparable, isEnvelope } from './secret-envelope';

export interface RenderInputs {
  /** "name@version". */
  bundle: string;
  /** Every variable the agent rendered with (Command.variables). */
  variables: Record<string, string>;
  /** The fact paths the bundle's templates read ("cpu.cores") → the value as rendered. */
  facts: Record<string, string>;
  /** Names among `variables` that came from the job's extra vars (-e), for the operator. */
  extraVars?: string[];
}

/** Layers of variables, lowest first: the bundle's defaults < globals < the group's < the job's extra vars. */
export function mergeVariables(...layers: readonly Readonly<Record<string, string | number | boolean>>[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const layer of layers) for (const [k, v] of Object.entries(layer)) out[k] = String(v);
  return out;
}

function lookup(root: unknown, path: readonly string[]): unknown {
  let cur: unknown = root;
  for (const seg of path) {
    if (cur === null || typeof cur !== 'object' || !Object.prototype.hasOwnProperty.call(cur, seg)) return undefined;
    cur = (cur as Record<string, unknown>)[seg];
  }
  return cur;
}

/** The facts a bundle's templates read, as they render (absent or non-scalar: ''). */
export function factInputs(bundle: Pick<Bundle, 'units' | 'verify'>, facts: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const path of [...templateReferences(bundle).facts].sort()) {
    const v = lookup(facts, path.split('.'));
    out[path] = typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? String(v) : '';
  }
  return out;
}

/** The inputs a bundle version renders with on a node (extraVars: the names the job's -e set). */
export function renderInputs(bundleRef: string, bundle: Pick<Bundle, 'units' | 'verify'>, variables: Record<string, string>, facts: unknown, extraVars: readonly string[] = []): RenderInputs {
  return {
    bundle: bundleRef, variables: { ...variables }, facts: factInputs(bundle, facts),
    ...(extraVars.length ? { extraVars: [...new Set(extraVars)].sort() } : {}),
  };
}

/**
 * Why a node is out of date: what differs between the applied inputs and the desired ones, one
 * line each ("bundle web@2 → web@3", "vars.listen 7777 → 8080", "facts.cpu.cores 4 → 8"); empty
 * when it is up to date. `bundle` is the desired bundle (its templates say which inputs matter).
 * A node applied before inputs were recorded is compared by bundle version only.
 */
export function outOfDateReasons(appliedConfig: string | undefined, applied: RenderInputs | undefined, desired: RenderInputs, bundle: Pick<Bundle, 'units' | 'verify'>): string[] {
  const from = applied?.bundle ?? appliedConfig ?? '';
  if (from !== desired.bundle) return [`bundle ${from || '(none)'} → ${desired.bundle}`];
  if (!applied) return [];
  const out: string[] = [];
  const show = (v: string | undefined): string => (v === undefined ? '(unset)' : isEnvelope(v) ? '(secret)' : JSON.stringify(v));
  for (const k of [...templateReferences(bundle).variables.keys()].sort()) {
    const a = applied.variables[k];
    const d = desired.variables[k];
    // A secret compares by its fingerprint: the same value re-encrypted (rotation) is no change.
    if (comparable(a) !== comparable(d)) out.push(`vars.${k} ${show(a)} → ${show(d)}${applied.extraVars?.includes(k) ? ' (applied with -e)' : ''}`);
  }
  for (const k of Object.keys(desired.facts).sort()) {
    if (applied.facts[k] !== desired.facts[k]) out.push(`facts.${k} ${show(applied.facts[k])} → ${show(desired.facts[k])}`);
  }
  return out;
}

/** The stored form decoded leniently (a record written by an older coordinator has none). */
export function decodeRenderInputs(v: unknown): RenderInputs | undefined {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return undefined;
  const o = v as Record<string, unknown>;
  if (typeof o.bundle !== 'string') return undefined;
  const strings = (x: unknown): Record<string, string> => {
    const out: Record<string, string> = {};
    if (x && typeof x === 'object' && !Array.isArray(x)) for (const [k, y] of Object.entries(x as Record<string, unknown>)) out[k] = String(y);
    return out;
  };
  const extra = Array.isArray(o.extraVars) ? o.extraVars.filter((x): x is string => typeof x === 'string') : [];
  return { bundle: o.bundle, variables: strings(o.variables), facts: strings(o.facts), ...(extra.length ? { extraVars: extra } : {}) };
}
