/** `fedge serve --ui`: the dashboard's listen address, parsed with zod so a bad value names the flag and the fix. */
import { z } from 'zod';
import { ValidationError } from '@fedge/proto';

export const DEFAULT_UI_PORT = 8080;

export interface UiListen {
  host: string;
  port: number;
  /** Not a loopback address: the dashboard's read API is reachable by whoever reaches this host. */
  exposed: boolean;
}

const LOOPBACK = /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|localhost|\[::1\])$/;

/** Whether a host (as in HOST:PORT or a Host header's name; IPv6 in brackets) is this machine's loopback. */
export function isLoopbackHost(host: string): boolean {
  return LOOPBACK.test(host.toLowerCase());
}

/**
 * "HOST:PORT", or a bare port (bound to loopback: the read API has no token, so the network gets it only when asked
 * with an explicit host such as 0.0.0.0).
 */
export const uiListenSchema = z
  .string()
  .trim()
  .transform((v, ctx) => {
    const m = /^(?:(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):)?(\d{1,5})$/.exec(v);
    const port = m ? Number(m[2]) : NaN;
    if (!m || port > 65535) {
      ctx.addIssue({ code: 'custom', message: `"${v}" is not HOST:PORT or PORT (e.g. 127.0.0.1:${DEFAULT_UI_PORT})` });
      return z.NEVER;
    }
    const host = m[1] ?? '127.0.0.1';
    return { host, port, exposed: !isLoopbackHost(host) };
  });

/** The serve options the dashboard adds; `ui` absent means no dashboard (the default). */
export const serveUiOptionsSchema = z.object({ ui: uiListenSchema.optional() });

/** Parses `--ui` (env FEDGE_UI); a bad value is E_VALIDATION naming the flag. */
export function parseUiOptions(opts: { ui?: string | undefined }): { ui?: UiListen } {
  const r = serveUiOptionsSchema.safeParse(opts.ui === undefined || opts.ui === '' ? {} : { ui: opts.ui });
  if (!r.success) throw new ValidationError(`--ui: ${r.error.issues[0]?.message ?? 'invalid'}`);
  return r.data.ui ? { ui: r.data.ui } : {};
}
