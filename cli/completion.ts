/**
 * `clusterctl completion bash|zsh|fish`: a completion script generated from the command tree,
 * so a new command completes without anyone editing a script. The script walks the words typed
 * so far down the tree (flags and their values skipped) and offers that node's subcommands and
 * flags; zsh loads the bash function through bashcompinit, fish gets the same walk in fish.
 * Where a command takes a node id, group or bundle name, the script also asks the coordinator
 * (`clusterctl __complete nodes|groups|bundles`, a 1 s deadline, nothing when it is down).
 */
import { kebab, type OptionSpecs } from '../shared/options';
import { defineCommand, EXIT, type Command } from './command';
import type { CliContext } from './context';
import { OUTPUT_FORMATS } from './output';
import { InvalidArgumentError } from '../shared/errors';

/** What the coordinator can name for a command's positional argument. */
export type Dynamic = 'nodes' | 'groups' | 'bundles' | '';

interface Entry {
  /** Command words after `clusterctl`, space-joined ('' = the root). */
  path: string;
  /** Subcommands (each once, aliases included) and flags. */
  words: string[];
  valueFlags: string[];
  dynamic: Dynamic;
}

/** A command that takes positionals, under `node(s)`, `group(s)` or `bundle(s)`, completes their names. */
function dynamicOf(path: readonly string[], cmd: Command<CliContext>): Dynamic {
  if (!cmd.run || (cmd.maxPositionals ?? 0) === 0) return '';
  const top = path[0] ?? '';
  if (top === 'node' || top === 'nodes') return 'nodes';
  if (top === 'group' || top === 'groups') return 'groups';
  if (top === 'bundle' || top === 'bundles') return 'bundles';
  return '';
}

function flagsOf(specs: OptionSpecs): { all: string[]; withValue: string[] } {
  const all: string[] = [];
  const withValue: string[] = [];
  for (const [key, spec] of Object.entries(specs)) {
    const names = [`--${spec.flag ?? kebab(key)}`, ...(spec.short ? [`-${spec.short}`] : [])];
    all.push(...names);
    if (spec.kind !== 'boolean') withValue.push(...names);
  }
  return { all, withValue };
}

/** Every command path with what may follow it. Pure, so tests can check the tree is covered. */
export function completionEntries(root: Command<CliContext>): Entry[] {
  const out: Entry[] = [];
  const walk = (cmd: Command<CliContext>, path: string[], inherited: OptionSpecs): void => {
    const specs = { ...inherited, ...(cmd.options ?? {}) };
    const def = cmd.defaultSubcommand ? cmd.subcommands?.find((c) => c.name === cmd.defaultSubcommand) : undefined;
    const flags = flagsOf({ ...specs, ...(def?.options ?? {}) });
    // `get` is an alias of two subcommands of `nodes`: offer each word once.
    const subs = [...new Set((cmd.subcommands ?? []).filter((c) => !c.hidden).flatMap((c) => [c.name, ...(c.aliases ?? [])]))];
    out.push({
      path: path.join(' '), words: [...new Set([...subs, ...flags.all, '--help'])], valueFlags: [...flags.withValue, '--config'], dynamic: dynamicOf(path, cmd),
    });
    for (const c of (cmd.subcommands ?? []).filter((s) => !s.hidden)) {
      for (const name of [c.name, ...(c.aliases ?? [])]) walk(c, [...path, name], specs);
    }
  };
  walk(root, [], {});
  return out;
}

function q(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export function bashScript(root: Command<CliContext>): string {
  const entries = completionEntries(root);
  const words = entries.map((e) => `    ${q(e.path)}) words=${q(e.words.join(' '))}; vflags=${q(e.valueFlags.join(' '))} ;;`).join('\n');
  const subs = entries.map((e) => `    ${q(e.path)}) subs=${q(e.words.filter((w) => !w.startsWith('-')).join(' '))} ;;`).join('\n');
  return `# clusterctl completion for bash (generated from the command tree by \`clusterctl completion bash\`).
# Install: clusterctl completion bash > /etc/bash_completion.d/clusterctl   (or: source <(clusterctl completion bash))
__clusterctl_words() {
  case "$1" in
${words}
    *) words=''; vflags='' ;;
  esac
}
__clusterctl_subs() {
  case "$1" in
${subs}
    *) subs='' ;;
  esac
}
__clusterctl_dynamic() {
  case "$1" in
${entries.filter((e) => e.dynamic).map((e) => `    ${q(e.path)}) dyn=${e.dynamic} ;;`).join('\n')}
    *) dyn='' ;;
  esac
}
_clusterctl() {
  local cur prev path i w words vflags subs
  cur="\${COMP_WORDS[COMP_CWORD]}"
  prev="\${COMP_WORDS[COMP_CWORD-1]}"
  path=''
  i=1
  while [ "$i" -lt "$COMP_CWORD" ]; do
    w="\${COMP_WORDS[i]}"
    __clusterctl_words "$path"
    case "$w" in
      -*) case " $vflags " in *" $w "*) i=$((i+1)) ;; esac ;;
      *) __clusterctl_subs "$path"
         case " $subs " in *" $w "*) path="\${path:+$path }$w" ;; esac ;;
    esac
    i=$((i+1))
  done
  __clusterctl_words "$path"
  case "$prev" in
    -o|--output) COMPREPLY=( $(compgen -W ${q(OUTPUT_FORMATS.join(' '))} -- "$cur") ); return ;;
    --config|-f|--file) COMPREPLY=( $(compgen -f -- "$cur") ); return ;;
  esac
  case " $vflags " in *" $prev "*) COMPREPLY=(); return ;; esac
  __clusterctl_dynamic "$path"
  if [ -n "$dyn" ] && [ "\${cur#-}" = "$cur" ]; then
    words="$words $(clusterctl --timeout 1s __complete "$dyn" 2>/dev/null)"
  fi
  COMPREPLY=( $(compgen -W "$words" -- "$cur") )
}
complete -F _clusterctl clusterctl
`;
}

export function zshScript(root: Command<CliContext>): string {
  return `#compdef clusterctl
# clusterctl completion for zsh (generated by \`clusterctl completion zsh\`): the bash function through bashcompinit.
# Install: clusterctl completion zsh > "\${fpath[1]}/_clusterctl"   (or: source <(clusterctl completion zsh))
autoload -U +X bashcompinit && bashcompinit
${bashScript(root)}`;
}

export function fishScript(root: Command<CliContext>): string {
  const entries = completionEntries(root);
  const cases = (pick: (e: Entry) => string): string => entries.map((e) => `        case ${q(e.path)}\n            echo ${q(pick(e))}`).join('\n');
  return `# clusterctl completion for fish (generated from the command tree by \`clusterctl completion fish\`).
# Install: clusterctl completion fish > ~/.config/fish/completions/clusterctl.fish
function __clusterctl_table
    switch $argv[1]
${cases((e) => e.words.join(' '))}
    end
end
function __clusterctl_vflags
    switch $argv[1]
${cases((e) => e.valueFlags.join(' '))}
    end
end
function __clusterctl_dyn
    switch $argv[1]
${cases((e) => e.dynamic)}
    end
end
function __clusterctl_complete
    set -l tokens (commandline -opc)
    set -l path ''
    set -l i 2
    while test $i -le (count $tokens)
        set -l w $tokens[$i]
        if string match -q -- '-*' $w
            if contains -- $w (string split ' ' -- (__clusterctl_vflags $path))
                set i (math $i + 1)
            end
        else if contains -- $w (string split ' ' -- (__clusterctl_table $path))
            if test -z "$path"
                set path $w
            else
                set path "$path $w"
            end
        end
        set i (math $i + 1)
    end
    set -l prev $tokens[-1]
    switch $prev
        case -o --output
            string split ' ' -- ${q(OUTPUT_FORMATS.join(' '))}
            return
        case --config -f --file
            __fish_complete_path
            return
    end
    if contains -- $prev (string split ' ' -- (__clusterctl_vflags $path))
        return
    end
    string split ' ' -- (__clusterctl_table $path)
    set -l dyn (__clusterctl_dyn $path)
    if test -n "$dyn"
        clusterctl --timeout 1s __complete $dyn 2>/dev/null
    end
end
complete -c clusterctl -f -a '(__clusterctl_complete)'
`;
}

/** The command; it needs the tree it describes, so the tree passes itself in. */
export function completionCommand(tree: () => Command<CliContext>): Command<CliContext> {
  return defineCommand<CliContext, Record<string, never>>({
    name: 'completion',
    summary: 'Print a shell completion script (bash, zsh or fish)',
    usage: 'completion bash|zsh|fish',
    example: 'source <(clusterctl completion bash)\nclusterctl completion zsh > "${fpath[1]}/_clusterctl"\nclusterctl completion fish > ~/.config/fish/completions/clusterctl.fish',
    maxPositionals: 1,
    minPositionals: { count: 1, message: 'which shell? bash, zsh or fish' },
    async run({ positionals, context }) {
      const shell = positionals[0];
      if (shell === 'bash') context.out.write(bashScript(tree()));
      else if (shell === 'zsh') context.out.write(zshScript(tree()));
      else if (shell === 'fish') context.out.write(fishScript(tree()));
      else throw new InvalidArgumentError(`no completion for shell ${JSON.stringify(shell)}: use bash, zsh or fish`);
      return EXIT.ok;
    },
  });
}

/**
 * `clusterctl __complete nodes|groups|bundles`: the names the completion scripts offer, one a
 * line. Not listed in help; any failure (no credentials, coordinator down) prints nothing and
 * exits 0, so a shell never shows an error while the operator types.
 */
export const completeNamesCommand = defineCommand<CliContext, Record<string, never>>({
  name: '__complete',
  summary: 'Names for shell completion (used by the completion scripts)',
  usage: '__complete nodes|groups|bundles',
  example: 'clusterctl --timeout 1s __complete nodes',
  hidden: true,
  maxPositionals: 1,
  minPositionals: { count: 1, message: 'which names? nodes, groups or bundles' },
  async run({ positionals, context }) {
    const what = positionals[0];
    try {
      let names: string[] = [];
      if (what === 'nodes') names = (await context.client.listNodes()).map((n) => n.id);
      else if (what === 'groups') names = (await context.client.listGroups()).map((g) => g.name);
      else if (what === 'bundles') names = [...new Set((await context.client.listBundles()).map((b) => b.name))];
      if (names.length) context.out.write(names.join('\n') + '\n');
    } catch {
      // Completion stays silent: the operator sees nothing rather than an error mid-word.
    }
    return EXIT.ok;
  },
});
