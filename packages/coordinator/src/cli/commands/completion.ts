/** `fedge completion bash|zsh`: a completion script generated from the same command table --help prints. */
import { Argument, Command } from 'commander';
import { COMPLETION_SHELLS, completionScript, type CompletionShell } from '@fedge/proto';

/** `root`'s completion command (fedge-agent has its own, on the same generator in @fedge/proto). */
export function completionCommand(root: Command): Command {
  const prog = root.name();
  return new Command('completion')
    .description(`print a ${prog} tab-completion script for bash or zsh (commands, aliases, flags and their choices)`)
    .addArgument(new Argument('<shell>', 'bash or zsh').choices(COMPLETION_SHELLS))
    .addHelpText(
      'after',
      `
Examples:
  source <(${prog} completion bash)                                  # this shell only
  ${prog} completion bash > ~/.local/share/bash-completion/completions/${prog}   # every new bash
  echo 'source <(${prog} completion zsh)' >> ~/.zshrc

The script prints a shell function, not JSON: --format does not apply.`,
    )
    .action((shell: CompletionShell) => {
      process.stdout.write(completionScript(root, shell));
    });
}
