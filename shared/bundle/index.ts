/** Bundles: schema, validation, loading, templates. Shared by the agent and the coordinator. */
export type { Bundle, UnitSpec, UnitKind, VerifyProbe, FileUnitSpec, DirectoryUnitSpec, PackageUnitSpec, SystemdUnitSpec, CommandUnitSpec, ModeString } from './types';
export { validateBundle, bundleProblems, formatPath, BundleValidationError, BUNDLE_SCHEMA } from './validate-bundle';
export { parseBundle, loadBundleFile } from './load-bundle';
export {
  missingVariables, renderBundle, renderString, templateReferences, TemplateError, type TemplateReferences, type TemplateScope, type TemplateSite,
} from './render-template';
export { inlineSources, type SourceLookup } from './inline-sources';
export { canonicalJson, digestOf } from './digest';
