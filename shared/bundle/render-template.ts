/**
 * Templates in unit fields: `{{ vars.NAME }}` and `{{ facts.PATH }}` (e.g. `{{ facts.cpu.cores }}`,
 * `{{ facts.disks.0.sizeBytes }}`). Deliberately tiny: no logic, no filters, so a rendered
 * bundle is predictable and its digest means something.
 *
 * An undefined variable or fact is an error naming the unit and field, never an empty string:
 * a config file silently rendered with a blank server name is worse than a refused run.
 * Other `{{ ... }}` text (Prometheus or Go templates inside a file's content) is left as it is;
 * only near-misses of our two roots (`var.x`, `fact.x`, `variables.x`) are refused as typos, and
 * `node.x`, which an operator may expect to read node labels (it does not exist).
 */
import { InvalidArgumentError } from '../errors';
import type { Bundle, UnitSpec, VerifyProbe } from './types';
import { factPathProblem } from '../facts';

export interface TemplateScope {
  vars: Readonly<Record<string, string | number | boolean>>;
  /** Node facts (shared/facts.ts's Facts, or any JSON object); undefined when none are known. */
  facts?: unknown;
}

const EXPRESSION = /\{\{\s*([A-Za-z_][A-Za-z0-9_]*)((?:\.[A-Za-z0-9_-]+)*)\s*\}\}/g;
const TYPO_ROOTS = new Set(['var', 'fact', 'variables', 'variable', 'Vars', 'Facts']);
/** `node` looks like a root (`{{ node.labels.rack }}`) but is not one: refused, saying what to use. */
const NOT_A_ROOT = 'node';

/** Why `{{ root... }}` is refused, or undefined for text left as it is (other template languages). */
function rootProblem(rootName: string, whole: string, site: TemplateSite): string | undefined {
  if (TYPO_ROOTS.has(rootName)) return `${siteText(site)}: ${whole.trim()} names no template root; use {{ vars.NAME }} or {{ facts.PATH }}`;
  if (rootName === NOT_A_ROOT) {
    return `${siteText(site)}: ${whole.trim()}: node labels and fields are not template inputs; set the value as a group variable ({{ vars.NAME }}) or read a fact ({{ facts.PATH }})`;
  }
  return undefined;
}

/** Where a template sits, for error messages: `unit chrony-conf, field content`. */
export interface TemplateSite {
  unitId?: string;
  probeId?: string;
  field: string;
}

function siteText(site: TemplateSite): string {
  if (site.unitId !== undefined) return `unit ${site.unitId}, field ${site.field}`;
  if (site.probeId !== undefined) return `verify probe ${site.probeId}, field ${site.field}`;
  return `field ${site.field}`;
}

function lookup(root: unknown, path: string[]): unknown {
  let cur: unknown = root;
  for (const seg of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    if (!Object.prototype.hasOwnProperty.call(cur, seg)) return undefined;
    cur = (cur as Record<string, unknown>)[seg];
  }
  return cur;
}

/**
 * Renders one string. Problems (undefined names, non-scalar facts) are pushed to `problems`
 * and the expression is left unrendered so every problem in a bundle can be listed at once.
 */
export function renderString(text: string, scope: TemplateScope, site: TemplateSite, problems: string[]): string {
  return text.replace(EXPRESSION, (whole: string, rootName: string, dotted: string) => {
    const path = dotted.split('.').slice(1);
    if (rootName !== 'vars' && rootName !== 'facts') {
      const problem = rootProblem(rootName, whole, site);
      if (problem) problems.push(problem);
      return whole;
    }
    if (path.length === 0) {
      problems.push(`${siteText(site)}: ${whole.trim()} needs a name after "${rootName}."`);
      return whole;
    }
    const name = `${rootName}.${path.join('.')}`;
    let value: unknown;
    if (rootName === 'vars') {
      value = path.length === 1 && Object.prototype.hasOwnProperty.call(scope.vars, path[0]) ? scope.vars[path[0]] : undefined;
      if (value === undefined) {
        const known = Object.keys(scope.vars);
        problems.push(`${siteText(site)}: undefined variable ${name} (defined: ${known.length ? known.join(', ') : 'none'})`);
        return whole;
      }
    } else {
      if (scope.facts === undefined) {
        problems.push(`${siteText(site)}: ${name} used but no facts are available (collect them, or pass --facts FILE)`);
        return whole;
      }
      value = lookup(scope.facts, path);
      if (value === undefined) {
        problems.push(`${siteText(site)}: undefined fact ${name}`);
        return whole;
      }
    }
    if (value === null) {
      problems.push(`${siteText(site)}: ${name} is null on this node`);
      return whole;
    }
    if (typeof value === 'string') return value;
    if (typeof value === 'number' || typeof value === 'boolean') return String(value);
    problems.push(`${siteText(site)}: ${name} is ${Array.isArray(value) ? 'a list' : `of type ${typeof value}`}; name a text or number field`);
    return whole;
  });
}

/** Fields that are names or references, never templated. */
const UNTEMPLATED = new Set(['id', 'kind', 'restartWhenChanged', 'timeoutMs', 'enabled', 'expectExit', 'expectStatus']);

function renderRecord<T extends object>(obj: T, scope: TemplateScope, site: (field: string) => TemplateSite, problems: string[]): T {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(obj)) {
    if (UNTEMPLATED.has(key)) {
      out[key] = value;
    } else if (typeof value === 'string') {
      out[key] = renderString(value, scope, site(key), problems);
    } else if (key === 'env' && value !== null && typeof value === 'object') {
      const env: Record<string, string> = {};
      for (const [k, v] of Object.entries(value as Record<string, string>)) env[k] = renderString(v, scope, site(`env.${k}`), problems);
      out[key] = env;
    } else {
      out[key] = value;
    }
  }
  return out as T;
}

/** Thrown when a bundle cannot be rendered for a node; `problems` lists each one. */
export class TemplateError extends InvalidArgumentError {
  constructor(readonly bundleName: string, readonly problems: string[]) {
    super(`bundle ${bundleName} cannot be rendered (${problems.length} problem${problems.length === 1 ? '' : 's'}): ${problems.join('; ')}`);
  }
}

/**
 * Renders every templated field of every unit and probe. `extraVars` (node or group variables,
 * `--vars k=v`) override the bundle's own. Throws TemplateError listing every problem.
 */
export function renderBundle(bundle: Bundle, options: { facts?: unknown; extraVars?: Record<string, string | number | boolean> } = {}): Bundle {
  const vars = { ...bundle.variables, ...(options.extraVars ?? {}) };
  const scope: TemplateScope = { vars, facts: options.facts };
  const problems: string[] = [];
  const units = bundle.units.map((u): UnitSpec => {
    const site = (field: string): TemplateSite => ({ unitId: u.id, field });
    if (u.kind !== 'file' || u.secret !== true) return renderRecord<UnitSpec>(u, scope, site, problems);
    // A secret's content is delivered as written: a template would need its cleartext wherever a bundle's references are checked.
    const { content, ...rest } = u;
    const r = renderRecord(rest, scope, site, problems);
    return content === undefined ? r : { ...r, content };
  });
  const verify = bundle.verify.map((p) => renderRecord<VerifyProbe>(p, scope, (field) => ({ probeId: p.id, field }), problems));
  if (problems.length > 0) throw new TemplateError(bundle.name, problems);
  return { ...bundle, variables: vars, units, verify };
}

/** What a bundle's templates refer to, found without rendering (at push, before any node). */
export interface TemplateReferences {
  /** Misspelt roots, facts that no node reports, malformed expressions: each names its unit and field. */
  problems: string[];
  /** Each `vars.NAME` used → where ("unit conf, field content"). */
  variables: Map<string, string[]>;
  /** Each fact path used, dotted without the root ("cpu.cores"): what a node's rendering reads of its facts. */
  facts: Set<string>;
}

function visitTemplated(bundle: Pick<Bundle, 'units' | 'verify'>, visit: (text: string, site: TemplateSite) => void): void {
  const walk = (obj: object, site: (field: string) => TemplateSite): void => {
    for (const [key, value] of Object.entries(obj)) {
      if (UNTEMPLATED.has(key)) continue;
      if (typeof value === 'string') visit(value, site(key));
      else if (key === 'env' && value !== null && typeof value === 'object') {
        for (const [k, v] of Object.entries(value as Record<string, unknown>)) if (typeof v === 'string') visit(v, site(`env.${k}`));
      }
    }
  };
  for (const u of bundle.units) walk(u.kind === 'file' && u.secret === true ? { ...u, content: undefined } : u, (field) => ({ unitId: u.id, field }));
  for (const p of bundle.verify) walk(p, (field) => ({ probeId: p.id, field }));
}

/**
 * Every template reference of a bundle, checked against the facts schema (shared/facts.ts) and
 * the two roots. Variables are collected, not judged: a group may supply them, so whether each
 * is defined is decided where the bundle meets its group (missingVariables).
 */
export function templateReferences(bundle: Pick<Bundle, 'units' | 'verify'>): TemplateReferences {
  const out: TemplateReferences = { problems: [], variables: new Map(), facts: new Set() };
  visitTemplated(bundle, (text, site) => {
    for (const m of text.matchAll(EXPRESSION)) {
      const [whole, rootName, dotted] = m;
      const path = dotted.split('.').slice(1);
      if (rootName !== 'vars' && rootName !== 'facts') {
        const problem = rootProblem(rootName, whole, site);
        if (problem) out.problems.push(problem);
        continue;
      }
      if (path.length === 0) {
        out.problems.push(`${siteText(site)}: ${whole.trim()} needs a name after "${rootName}."`);
      } else if (rootName === 'vars') {
        if (path.length > 1) {
          out.problems.push(`${siteText(site)}: ${whole.trim()}: variables are flat, name one (vars.${path[0]})`);
        } else {
          out.variables.set(path[0], [...(out.variables.get(path[0]) ?? []), siteText(site)]);
        }
      } else {
        const problem = factPathProblem(path);
        if (problem) out.problems.push(`${siteText(site)}: unknown fact facts.${path.join('.')}: ${problem}`);
        else out.facts.add(path.join('.'));
      }
    }
  });
  return out;
}

/**
 * Variables `refs` uses that none of `supplied` (the bundle's defaults, the group's variables)
 * defines, each with where it is used: "listen (unit conf, field content)".
 */
export function missingVariables(refs: TemplateReferences, ...supplied: readonly Readonly<Record<string, unknown>>[]): string[] {
  const out: string[] = [];
  for (const [name, sites] of refs.variables) {
    if (supplied.some((s) => Object.prototype.hasOwnProperty.call(s, name))) continue;
    out.push(`${name} (${[...new Set(sites)].join('; ')})`);
  }
  return out.sort();
}
