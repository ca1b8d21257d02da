/**
 * One folder per runtime (STYLE.md): clusterctl, the agent and the coordinator share code only
 * through shared/ (and the generated proto types). Every relative import of the sources,
 * static, dynamic (`import()`, which a lint rule on import declarations misses) or `require`,
 * is resolved and its top folder checked against what the importing runtime may use.
 */
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { expect } from 'chai';

/** The repository root: dist/test/cli → ../../.. */
const ROOT = resolve(__dirname, '..', '..', '..');

const ALLOWED: Record<string, readonly string[]> = {
  cli: ['cli', 'shared', 'generated', 'package.json'],
  agent: ['agent', 'shared', 'generated', 'package.json'],
  coordinator: ['coordinator', 'shared', 'generated', 'package.json'],
  shared: ['shared', 'generated', 'package.json'],
};

/** Imports that break the rule and are known: none (keep it that way). */
const KNOWN: readonly string[] = [];

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sources(path);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [path] : [];
  });
}

/** Relative module specifiers of a source: `from '...'`, `import('...')`, `require('...')`. */
export function relativeImports(text: string): string[] {
  const found: string[] = [];
  for (const m of text.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*|\brequire\s*\(\s*|^\s*import\s+)(['"])(\.{1,2}\/[^'"]+)\1/gm)) found.push(m[2]);
  return found;
}

function violations(): string[] {
  const out: string[] = [];
  for (const [folder, allowed] of Object.entries(ALLOWED)) {
    for (const file of sources(join(ROOT, folder))) {
      for (const spec of relativeImports(readFileSync(file, 'utf8'))) {
        const target = relative(ROOT, resolve(dirname(file), spec));
        const top = target.split(sep)[0];
        if (!allowed.includes(top)) out.push(`${relative(ROOT, file).split(sep).join('/')} -> ${target.split(sep).join('/')}`);
      }
    }
  }
  return out.sort();
}

describe('layering: cli/, agent/ and coordinator/ share code only through shared/', () => {
  it('finds the sources (run from dist/test/cli)', () => {
    for (const folder of Object.keys(ALLOWED)) expect(existsSync(join(ROOT, folder, 'main.ts')) || folder === 'shared', folder).to.equal(true);
  });

  it('reads static, dynamic and require imports', () => {
    expect(relativeImports([
      "import { a } from '../x/a';",
      "import type { B } from './b';",
      "const { c } = await import('../../coordinator/c');",
      "export { d } from './d';",
      "import './side-effect';",
      "const e = require('../e');",
      "import { f } from 'yaml';",
    ].join('\n'))).to.deep.equal(['../x/a', './b', '../../coordinator/c', './d', './side-effect', '../e']);
  });

  it('no runtime imports another runtime (only the known exceptions, which must still exist)', () => {
    expect(violations()).to.deep.equal([...KNOWN].sort());
  });
});
