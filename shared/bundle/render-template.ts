/**
 * Templates in unit fields: `{{ vars.NAME }}` and `{{ facts.PATH }}` (e.g. `{{ facts.cpu.cores }}`,
 * `{{ facts.disks.0.sizeBytes }}`). Deliberately tiny: no logic, no filters, so a rendered
 * bundle is predictable and its digest means something.
 *
 * An undefined variable or fact is an error naming the unit and field, never an empty string:
 * a config file silently rendered with a blank server name is worse than a refused run.
 * Other `{{ ... }}` text (Prometheus or Go templates inside a file's content) is left as it is;
 * only near-misses of our two roots (`var.x`, `fact.x`, `variables.x`) are refused as typos.
 */
import { InvalidArgumentError } from '../errors';
import type { Bundle, UnitSpec, VerifyProbe } from './types';

export interface TemplateScope {
  vars: Readonly<Record<string, string | number | boolean>>;
  /** Node facts (shared/facts.ts's Facts, or any JSON object); undefined when none are known. */
  facts?: unknown;
}

const EXPRESSION = /\{\{\s*([A-Za-z_][A-Za-z0-9_]*)((?:\.[A-Za-z0-9_-]+)*)\s*\}\}/g;
const TYPO_ROOTS = new Set(['var', 'fact', 'variables', 'variable', 'Vars', 'Facts']);

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
      if (TYPO_ROOTS.has(rootName)) {
        problems.push(`${siteText(site)}: ${whole.trim()} names no template root; use {{ vars.NAME }} or {{ facts.PATH }}`);
      }
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
  const units = bundle.units.map((u) => renderRecord<UnitSpec>(u, scope, (field) => ({ unitId: u.id, field }), problems));
  const verify = bundle.verify.map((p) => renderRecord<VerifyProbe>(p, scope, (field) => ({ probeId: p.id, field }), problems));
  if (problems.length > 0) throw new TemplateError(bundle.name, problems);
  return { ...bundle, variables: vars, units, verify };
}
