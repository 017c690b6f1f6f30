/** The `fedge` command table: what --help prints, `fedge completion` turns into shell scripts and the CLI audit walks. */
import { Command } from 'commander';
import { COORDINATOR_VERSION } from '../version.js';
import { serveCommand } from './commands/serve.js';
import { runCommand } from './commands/run.js';
import { agentCommand } from './commands/agent.js';
import { demoCommand } from './commands/demo.js';
import { privacyCommand } from './commands/privacy.js';
import { modelCommand } from './commands/model.js';
import { completionCommand } from './commands/completion.js';

export function createProgram(): Command {
  const program = new Command('fedge')
    .description('fedge: federated learning across fleets of edge devices')
    .version(COORDINATOR_VERSION)
    .showHelpAfterError('(add --help for usage and examples)')
    .addHelpText(
      'after',
      `
Examples:
  fedge demo                                     # local federation on MNIST, no setup
  fedge serve --listen 127.0.0.1:7070            # start a coordinator
  fedge-agent --coordinator grpc://127.0.0.1:7070 --data mnist --partition iid --num-partitions 3 --partition-id 0
  fedge run start --model mnist-mlp --rounds 20 --min-agents 3 --watch
  fedge run list
  fedge agent list --format json
  fedge model export --run RUN_ID --quantize int8 -o model.int8.onnx
  fedge privacy epsilon --sampling-rate 0.1 --noise-multiplier 1.1 --steps 100 --delta 1e-5
  source <(fedge completion bash)                # tab completion

Every command that prints takes --format json (one JSON document on stdout; fedge serve: JSON lines).`,
    );
  program.addCommand(serveCommand());
  program.addCommand(runCommand());
  program.addCommand(agentCommand());
  program.addCommand(demoCommand());
  program.addCommand(privacyCommand());
  program.addCommand(modelCommand());
  program.addCommand(completionCommand(program));
  // Root options (--version) only before the subcommand: `fedge model export --version V` is the subcommand's.
  program.enablePositionalOptions();
  return program;
}
