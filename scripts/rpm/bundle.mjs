#!/usr/bin/env node
// @ts-check
/**
 * Bundles one compiled program (dist/<role>/main.js) into a single CommonJS file for the RPMs,
 * with esbuild (platform node, target node20). Called by scripts/build-rpm:
 *
 *   node scripts/rpm/bundle.mjs ENTRY.js OUT_DIR/NAME.js
 *
 * What a plain `esbuild --bundle` gets wrong for this code base, and what this file does about it:
 * - Dependencies that read files next to their own sources at run time (etcd3 loads
 *   `${__dirname}/../proto/rpc.proto`; grpc-health-check, @grpc/reflection and grpc-js's
 *   channelz load their .proto files the same way). In a bundle `__dirname` is the bundle's
 *   directory, so those paths point nowhere. Each such module's `__dirname` is rewritten to
 *   `<bundle dir>/vendor/<package>/<its dir>`, and the package's .proto files are copied to
 *   the same relative places under `<bundle dir>/vendor/<package>/`, so the paths they build
 *   still resolve.
 *   Our own code (shared/proto.ts) keeps the real `__dirname`: it finds proto/ beside the bundle.
 * - `if (require.main === module) main()` in an entry file: esbuild wraps a CommonJS entry in
 *   its own module object, so the test is false and the program would silently do nothing.
 *   In the entry file only, the test is replaced by `true` (the bundle is only ever run).
 * - dbus-next's optional `usocket` (abstract sockets, not needed: the system bus is a path) and
 *   `x11` (X11 session-bus discovery) are not installed; they are required inside try/catch,
 *   so they stay external and fail at run time exactly as they do unbundled.
 * - Memory: V8 keeps a script's whole source in the heap, as Latin-1 (one byte a character) only
 *   if every character fits; one character above U+00FF and the whole script is stored as UTF-16.
 *   esbuild escapes strings and identifiers (charset ascii) but keeps some comments as written, and
 *   ours hold dashes and arrows: the 4.3 MB agent bundle became 8.6 MB of heap, resident for the
 *   agent's whole life (bench/README.md, "The agent's own cost"). Every character above U+00FF
 *   left in the output is written as a \uXXXX escape, which means the same in a comment, a string
 *   or a regular expression.
 *   The whitespace is minified too, for the same reason: the source is resident.
 * - The agent collects hardware facts in a child process, dist/agent/facts-child.js, found beside
 *   the agent's program (agent/facts-provider.ts): build-rpm and build-deb bundle it on its own as
 *   facts-child.js beside agent.js, so systeminformation is in neither the agent's bundle nor its heap.
 * Writes `<out>.meta.json` (esbuild's metafile: what went into the bundle) next to the bundle
 * for the build log; build-rpm does not package it.
 */
import { build } from 'esbuild';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';

const OPTIONAL_EXTERNALS = ['usocket', 'x11'];

const NODE_GUARD = `if (Number(process.versions.node.split('.')[0]) < 20) {
  process.stderr.write('this program needs Node.js 20 or newer (found ' + process.version + '): dnf module enable nodejs:20 && dnf install nodejs\\n');
  process.exit(1);
}`;

/** `/x/node_modules/@grpc/grpc-js/build/src/a.js` → { name: '@grpc/grpc-js', root: '/x/node_modules/@grpc/grpc-js' }. */
function packageOf(file) {
  const marker = `${sep}node_modules${sep}`;
  const at = file.lastIndexOf(marker);
  if (at < 0) return undefined;
  const base = file.slice(0, at + marker.length);
  const parts = file.slice(base.length).split(sep);
  const name = parts[0].startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0];
  return { name, root: join(base, name), nodeModules: base };
}

/**
 * Every .proto file of a package, wherever the package keeps them (etcd3: proto/, @grpc/reflection:
 * build/proto/), skipping its own node_modules and test fixtures.
 */
function protoFiles(root) {
  /** @type {string[]} */
  const found = [];
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        if (entry.name !== 'node_modules' && entry.name !== 'test' && entry.name !== 'sample') walk(path);
      } else if (entry.name.endsWith('.proto')) {
        found.push(path);
      }
    }
  };
  walk(root);
  return found;
}

async function main() {
  const [entryArg, outArg] = process.argv.slice(2);
  if (!entryArg || !outArg) {
    console.error('usage: node scripts/rpm/bundle.mjs ENTRY.js OUT.js');
    process.exit(2);
  }
  const entry = resolve(entryArg);
  const outfile = resolve(outArg);
  if (!existsSync(entry)) {
    console.error(`bundle: ${entryArg} does not exist (run npm run build)`);
    process.exit(1);
  }

  /** Packages whose files were rewritten: name → package root. */
  const vendored = new Map();

  /** @type {import('esbuild').Plugin} */
  const relocate = {
    name: 'relocate-dirname',
    setup(b) {
      b.onLoad({ filter: /\.js$/ }, (args) => {
        const isEntry = args.path === entry;
        const pkg = packageOf(args.path);
        if (!isEntry && !pkg) return undefined;
        let text = readFileSync(args.path, 'utf8');
        let changed = false;
        if (isEntry && /require\.main\s*===\s*module|module\s*===\s*require\.main/.test(text)) {
          text = text.replace(/require\.main\s*===\s*module|module\s*===\s*require\.main/g, 'true');
          changed = true;
        }
        if (pkg && text.includes('__dirname')) {
          const rel = relative(pkg.nodeModules, dirname(args.path)).split(sep).join('/');
          text = text.replace(/\b__dirname\b/g, `require("path").join(__dirname, "vendor", ${JSON.stringify(rel)})`);
          vendored.set(pkg.name, pkg.root);
          changed = true;
        }
        return changed ? { contents: text, loader: 'js', resolveDir: dirname(args.path) } : undefined;
      });
    },
  };

  const result = await build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    sourcemap: false,
    // Whitespace only: V8 keeps the whole source resident (see above), and indentation was a third
    // of it (agent 3.5 -> 2.3 MB). Names stay as written, so errors and stack traces keep function
    // names; their line numbers are the bundle's, which are few and long after this.
    minifyWhitespace: true,
    legalComments: 'inline',
    // rpm's `Requires: nodejs >= 20` is not a guarantee: RHEL's nodejs carries Epoch 1 and an
    // epoch-less requirement compares loosely against it. Refuse an old Node with one line.
    banner: { js: NODE_GUARD },
    external: OPTIONAL_EXTERNALS,
    plugins: [relocate],
    metafile: true,
    logLevel: 'warning',
  });

  const text = readFileSync(outfile, 'utf8');
  // Without the u flag a character beyond U+FFFF is two code units, each escaped: a valid pair.
  const latin1 = text.replace(/[^\u0000-\u00ff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  if (latin1 !== text) writeFileSync(outfile, latin1);

  const outDir = dirname(outfile);
  for (const [name, root] of vendored) {
    for (const file of protoFiles(root)) {
      const target = join(outDir, 'vendor', name, relative(root, file));
      mkdirSync(dirname(target), { recursive: true });
      cpSync(file, target);
    }
  }
  writeFileSync(`${outfile}.meta.json`, JSON.stringify(result.metafile));
  const inputs = Object.keys(result.metafile.inputs).length;
  console.error(`bundle: ${relative(process.cwd(), outfile)} from ${inputs} modules; vendored .proto files of: ${[...vendored.keys()].join(', ') || 'none'}`);
}

main().catch((err) => {
  console.error(`bundle: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
