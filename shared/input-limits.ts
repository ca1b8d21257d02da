/**
 * The bounds on what a request may carry, in one table: checked before anything is parsed or
 * stored, refused with INVALID_ARGUMENT and a short message that names the bound, never the
 * input (shared/bounded-yaml.ts, coordinator/call-guard.ts, the services). Each is far above
 * what an operator writes by hand and below what makes one request expensive.
 */
export interface InputLimits {
  /** A bundle's YAML or JSON text, bytes (etcd's request limit is 1.5 MiB; a bundle is stored with its metadata). */
  bundleBytes: number;
  /** A cluster file (plan/apply) with its bundles inline, bytes. */
  clusterFileBytes: number;
  /** Nesting of YAML/JSON mappings and sequences (flow brackets or block levels). */
  yamlDepth: number;
  /** The column at which block content may start (bounds block nesting before the parse). */
  yamlIndentColumns: number;
  /** Values in one YAML/JSON document. */
  yamlNodes: number;
  /** Alias expansions in one document (an alias bomb multiplies them). */
  yamlAliases: number;
  /** Keys of one mapping (variables, labels, a unit's fields). */
  mapKeys: number;
  /** Units in one bundle. */
  unitsPerBundle: number;
  /** Labels on one node. */
  labels: number;
  /** A label key or value, characters. */
  labelChars: number;
  /** Any other single name or short string of a request (ids, selectors, reasons), characters. */
  stringChars: number;
  /** Node ids named in one request. */
  idsPerRequest: number;
  /** Messages per second one agent stream may send (a burst of twice that is allowed). */
  agentMessagesPerSecond: number;
}

export const INPUT_LIMITS: Readonly<InputLimits> = {
  bundleBytes: 512 * 1024,
  clusterFileBytes: 1024 * 1024,
  yamlDepth: 32,
  yamlIndentColumns: 128,
  yamlNodes: 10_000,
  yamlAliases: 100,
  mapKeys: 2_000,
  unitsPerBundle: 500,
  labels: 64,
  labelChars: 253,
  stringChars: 4096,
  idsPerRequest: 10_000,
  agentMessagesPerSecond: 1000,
};
