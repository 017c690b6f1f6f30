/**
 * Shell completion scripts (bash, zsh) generated from a CLI's command table, the one its --help prints, so a new
 * command or flag completes without anyone editing a script. Shared by `fedge completion` and `fedge-agent completion`.
 */

/** The parts of a commander Command the generator reads (structural: proto does not depend on commander). */
export interface CompletionCommand {
  name(): string;
  aliases(): string[];
  readonly commands: readonly CompletionCommand[];
  readonly options: readonly CompletionOption[];
  /** Positional arguments; their choices complete like subcommands (e.g. `completion <shell>`). */
  readonly registeredArguments?: readonly { argChoices?: string[] | undefined }[];
}

export interface CompletionOption {
  long?: string | undefined;
  short?: string | undefined;
  hidden?: boolean;
  /** Set when the option takes a value (`<x>` required, `[x]` optional). */
  required?: boolean;
  optional?: boolean;
  argChoices?: string[] | undefined;
}

export const COMPLETION_SHELLS = ['bash', 'zsh'] as const;
export type CompletionShell = (typeof COMPLETION_SHELLS)[number];

interface Node { path: string; cmd: CompletionCommand }

function walk(cmd: CompletionCommand, path: string, out: Node[]): Node[] {
  out.push({ path, cmd });
  for (const sub of cmd.commands) walk(sub, `${path} ${q(sub.name())}`, out);
  return out;
}

/** Words are command names and flags: nothing here needs quoting, but a stray quote must not break the script. */
const q = (s: string): string => s.replace(/[^A-Za-z0-9_.:@/+-]/g, '');

function bashFunction(root: CompletionCommand, fn: string): string {
  const prog = q(root.name());
  const nodes = walk(root, prog, []);
  const transitions: string[] = [];
  const values: string[] = [];
  const choices: string[] = [];
  const words: string[] = [];
  for (const { path, cmd } of nodes) {
    for (const sub of cmd.commands) {
      for (const n of [sub.name(), ...sub.aliases()]) transitions.push(`      "${path} ${q(n)}") path="${path} ${q(sub.name())}" ;;`);
    }
    const opts = cmd.options.filter((o) => !o.hidden);
    for (const o of opts) {
      if (!o.required && !o.optional) continue;
      const flags = [o.long, o.short].filter((f): f is string => !!f).map((f) => `"${path}:${q(f)}"`);
      if (flags.length === 0) continue;
      if (o.argChoices?.length) choices.push(`    ${flags.join('|')}) COMPREPLY=($(compgen -W "${o.argChoices.map(q).join(' ')}" -- "$cur")); return ;;`);
      else values.push(flags.join('|'));
    }
    const argChoices = (cmd.registeredArguments ?? []).flatMap((a) => a.argChoices ?? []);
    const list = [...cmd.commands.flatMap((c) => [c.name(), ...c.aliases()]), ...argChoices, ...opts.flatMap((o) => [o.long, o.short].filter((f): f is string => !!f)), '--help'];
    words.push(`    "${path}") words="${[...new Set(list)].map(q).join(' ')}" ;;`);
  }
  return `${fn}() {
  local cur prev word words path i
  cur="\${COMP_WORDS[COMP_CWORD]}"
  prev="\${COMP_WORDS[COMP_CWORD-1]}"
  path="${prog}"
  # The subcommand path so far (aliases map to their command); flags and their values are skipped.
  for ((i = 1; i < COMP_CWORD; i++)); do
    word="\${COMP_WORDS[i]}"
    case "$path $word" in
${transitions.join('\n')}
    esac
  done
  case "$path:$prev" in
${choices.join('\n')}${values.length ? `\n    ${values.join('|')}) COMPREPLY=(); return ;;` : ''}
  esac
  case "$path" in
${words.join('\n')}
    *) words="" ;;
  esac
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}`;
}

/** The completion script for `shell`; installing it is described in the command's --help. */
export function completionScript(root: CompletionCommand, shell: CompletionShell): string {
  const prog = q(root.name());
  const fn = `_${prog.replace(/[^A-Za-z0-9_]/g, '_')}_complete`;
  const body = bashFunction(root, fn);
  // -o default: a flag's value (a file, an address) falls back to file name completion.
  const register = `complete -o default -F ${fn} ${prog}`;
  if (shell === 'bash') return `# ${prog} completion for bash, generated from its command table: source <(${prog} completion bash)\n${body}\n${register}\n`;
  // zsh runs the same function through its bash compatibility layer (bashcompinit ships with zsh).
  return `#compdef ${prog}\n# ${prog} completion for zsh, generated from its command table: source <(${prog} completion zsh)\nautoload -U +X compinit && compinit\nautoload -U +X bashcompinit && bashcompinit\n${body}\n${register}\n`;
}
