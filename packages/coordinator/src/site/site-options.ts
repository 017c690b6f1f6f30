/** `fedge serve --upstream URL --name SITE`: the aggregator-site options, parsed once by one zod schema. */
import { z } from 'zod';
import { ValidationError, formatZodError, grpcTarget, parseGrpcUrl } from '@fedge/proto';

/** The flags as commander hands them over (strings); env FEDGE_UPSTREAM and FEDGE_SITE_NAME fill the first two. */
export interface SiteFlags {
  upstream?: string | undefined;
  name?: string | undefined;
  upstreamJoinToken?: string | undefined;
  siteFraction?: string | undefined;
  siteMinAgents?: string | undefined;
  siteDeadline?: string | undefined;
}

const number = (flag: string) => z.coerce.number({ message: `${flag}: not a number` });

const siteSchema = z.strictObject({
  upstream: z.string().min(1).refine((u) => /^(grpcs?|mqtts?):\/\/[^\s/]+\/?$/.test(u), { message: '--upstream: use grpc://HOST:PORT, grpcs://HOST:PORT, mqtt://HOST:PORT or mqtts://HOST:PORT (the root coordinator)' }),
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, '--name: the site name joins the root as an agent name: letters, digits, . _ - (up to 128), e.g. --name factory-1'),
  upstreamJoinToken: z.string().min(1).optional(),
  /** The site's own sampling of its agents per root task (the sub-run's agentsPerRound). */
  fraction: number('--site-fraction').gt(0, '--site-fraction: must be in (0, 1]').max(1, '--site-fraction: must be in (0, 1]').default(1),
  minAgents: number('--site-min-agents').int('--site-min-agents: a whole number').min(1, '--site-min-agents: at least 1').max(100_000).default(1),
  /** Upper bound of the site's round deadline; the root task's own deadline (less a margin for the upload) bounds it too. */
  deadlineSeconds: number('--site-deadline').positive('--site-deadline: seconds > 0').max(7 * 24 * 3600).default(600),
});

/** `target`: the gRPC target (grpc:// and grpcs://), or the broker URL itself (mqtt:// and mqtts://, `mqtt` set). */
export type SiteOptions = z.output<typeof siteSchema> & { target: string; tls: boolean; mqtt: boolean };

/** undefined without --upstream; a ValidationError naming the flag for anything else wrong (--name is required with it). */
export function parseSiteOptions(flags: object): SiteOptions | undefined {
  // commander's options object: every value below goes through the schema (or a check naming its flag).
  const f = flags as SiteFlags;
  if (!f.upstream) {
    const stray = (['siteFraction', 'siteMinAgents', 'siteDeadline'] as const).find((k) => f[k] !== undefined);
    if (stray) throw new ValidationError(`--${stray.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())}: only with --upstream (an aggregator site)`);
    return undefined;
  }
  if (!f.name) throw new ValidationError('--name: an aggregator site (--upstream) needs a name, the agent name it joins the root with (e.g. --name factory-1)');
  const r = siteSchema.safeParse({
    upstream: f.upstream,
    name: f.name,
    ...(f.upstreamJoinToken ? { upstreamJoinToken: f.upstreamJoinToken } : {}),
    ...(f.siteFraction !== undefined ? { fraction: f.siteFraction } : {}),
    ...(f.siteMinAgents !== undefined ? { minAgents: f.siteMinAgents } : {}),
    ...(f.siteDeadline !== undefined ? { deadlineSeconds: f.siteDeadline } : {}),
  });
  if (!r.success) throw new ValidationError(formatZodError(r.error));
  if (/^mqtts?:/.test(r.data.upstream)) return { ...r.data, target: r.data.upstream, tls: r.data.upstream.startsWith('mqtts:'), mqtt: true };
  const hp = parseGrpcUrl(r.data.upstream, '--upstream', 7070);
  return { ...r.data, target: grpcTarget(hp), tls: hp.tls, mqtt: false };
}
