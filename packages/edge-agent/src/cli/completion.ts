/** `fedge-agent completion bash|zsh`: a completion script generated from the command table --help prints. */
import { Argument, Command } from 'commander';
import { COMPLETION_SHELLS, completionScript, type CompletionShell } from '@fedge/proto';

export function completionCommand(root: Command): Command {
  return new Command('completion')
    .description('print a fedge-agent tab-completion script for bash or zsh (commands, flags and their choices)')
    .addArgument(new Argument('<shell>', 'bash or zsh').choices(COMPLETION_SHELLS))
    .addHelpText('after', '\nExamples:\n  source <(fedge-agent completion bash)\n  echo \'source <(fedge-agent completion zsh)\' >> ~/.zshrc')
    .action((shell: CompletionShell) => {
      process.stdout.write(completionScript(root, shell));
    });
}
