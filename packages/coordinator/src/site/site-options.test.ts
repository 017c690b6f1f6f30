/** fedge serve's aggregator-site flags: parsed by one zod schema, each error naming its flag. */
import { describe, expect, it } from 'vitest';
import { parseSiteOptions } from './site-options.js';

describe('parseSiteOptions', () => {
  it('is undefined without --upstream, and refuses site flags without it', () => {
    expect(parseSiteOptions({})).toBeUndefined();
    expect(() => parseSiteOptions({ siteMinAgents: '3' })).toThrow(/--site-min-agents: only with --upstream/);
  });

  it('parses the root URL, name and site round options, with defaults', () => {
    expect(parseSiteOptions({ upstream: 'grpc://root.example:7070', name: 'factory-1' })).toMatchObject({ target: 'root.example:7070', tls: false, name: 'factory-1', fraction: 1, minAgents: 1, deadlineSeconds: 600 });
    const o = parseSiteOptions({ upstream: 'grpcs://root:7443', name: 'f2', siteFraction: '0.5', siteMinAgents: '3', siteDeadline: '30', upstreamJoinToken: 't' });
    expect(o).toMatchObject({ target: 'root:7443', tls: true, mqtt: false, fraction: 0.5, minAgents: 3, deadlineSeconds: 30, upstreamJoinToken: 't' });
    expect(parseSiteOptions({ upstream: 'mqtt://root:1883', name: 'f3' })).toMatchObject({ target: 'mqtt://root:1883', mqtt: true, tls: false });
  });

  it('names the flag and the fix for every bad value', () => {
    expect(() => parseSiteOptions({ upstream: 'grpc://root:7070' })).toThrow(/--name: an aggregator site/);
    expect(() => parseSiteOptions({ upstream: 'http://root:7070', name: 'a' })).toThrow(/--upstream: use grpc:\/\//);
    expect(() => parseSiteOptions({ upstream: 'grpc://root:7070', name: 'a b' })).toThrow(/--name: the site name/);
    expect(() => parseSiteOptions({ upstream: 'grpc://root:7070', name: 'a', siteFraction: '2' })).toThrow(/--site-fraction: must be in \(0, 1\]/);
    expect(() => parseSiteOptions({ upstream: 'grpc://root:7070', name: 'a', siteMinAgents: 'x' })).toThrow(/--site-min-agents: not a number/);
    expect(() => parseSiteOptions({ upstream: 'grpc://root:7070', name: 'a', siteDeadline: '0' })).toThrow(/--site-deadline/);
  });
});
