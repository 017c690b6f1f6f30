/** `fedge serve`: runs the coordinator until interrupted. */
import { Command } from 'commander';
import { parseHostPort } from '@fedge/proto';
import { Coordinator } from '../../coordinator.js';
import { startGrpcServer } from '../../transport/grpc/server.js';
import { logger } from '../../log.js';

export const DEFAULT_LISTEN = '127.0.0.1:7070';

export function serveCommand(): Command {
  return new Command('serve')
    .description('start the coordinator (agents join it; the CLI manages runs through it)')
    .option('--listen <host:port>', 'address to listen on; 0.0.0.0 exposes it to the network (use inside containers)', process.env.FEDGE_LISTEN ?? DEFAULT_LISTEN)
    .option('--data-dir <dir>', 'where final models and run outputs are written', process.env.FEDGE_DATA_DIR ?? '.fedge')
    .option('--join-token <token>', 'shared secret agents must present to join (env FEDGE_JOIN_TOKEN)')
    .addHelpText(
      'after',
      `
Examples:
  fedge serve                                   # listen on ${DEFAULT_LISTEN}
  fedge serve --listen 0.0.0.0:7070 --data-dir /var/lib/fedge
  FEDGE_JOIN_TOKEN=s3cret FEDGE_ADMIN_TOKEN=adm1n fedge serve

Environment:
  FEDGE_JOIN_TOKEN   require this token from agents (same as --join-token)
  FEDGE_ADMIN_TOKEN  require this token from admin commands (fedge run ..., fedge agent ...)
  FEDGE_LOG_LEVEL    pino log level (default info)`,
    )
    .action(async (opts: { listen: string; dataDir: string; joinToken?: string }) => {
      const listen = parseHostPort(opts.listen, '--listen', 7070);
      const joinToken = opts.joinToken ?? process.env.FEDGE_JOIN_TOKEN;
      const coord = new Coordinator({ dataDir: opts.dataDir, ...(joinToken ? { joinToken } : {}) });
      const server = await startGrpcServer(coord, listen, process.env.FEDGE_ADMIN_TOKEN || undefined);
      logger.info({ address: server.address, dataDir: opts.dataDir, joinToken: !!joinToken }, `coordinator ready on ${server.address}`);
      const shutdown = async (sig: string): Promise<void> => {
        logger.info({ signal: sig }, 'shutting down');
        await coord.close();
        await server.close();
        process.exit(0);
      };
      process.once('SIGINT', () => void shutdown('SIGINT'));
      process.once('SIGTERM', () => void shutdown('SIGTERM'));
    });
}
