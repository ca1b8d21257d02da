/** The benchmarks' small command lines (the larger ones use shared/options.ts). */

/** `--name N` from process.argv: a positive integer, `fallback` when absent; an error naming `usage` otherwise. */
export function positiveIntArg(name: string, fallback: number, usage: string): number {
  const i = process.argv.indexOf(name);
  if (i < 0) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isSafeInteger(v) || v <= 0) throw new Error(`${name} needs a positive integer\n${usage}`);
  return v;
}
