/**
 * The worker discovery setting (`--worker-discovery dns://[SERVER[:PORT]]/NAME:PORT`), parsed where the
 * configuration is validated so that a malformed URL stops start-up naming what is wrong. The resolver
 * itself is src/balancer/discovery.ts.
 */
import { isIP } from 'node:net';

export interface DiscoveryTarget {
  /** The DNS server to ask (host:port), or undefined for the system's resolvers. */
  readonly server: string | undefined;
  readonly name: string;
  readonly port: number;
}

/** Parses a discovery URL; throws an Error saying what is wrong with it. */
export function parseDiscovery(spec: string): DiscoveryTarget {
  const m = /^dns:\/\/([^/]*)\/([^/:]+):(\d+)$/.exec(spec);
  if (!m) throw new Error(`'${spec}' is not dns://[SERVER[:PORT]]/NAME:PORT (e.g. dns:///sluice-worker.sluice.svc.cluster.local:9000)`);
  const [, authority = '', name = '', portText = ''] = m;
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`'${spec}': port ${portText} is not 1-65535`);
  if (!/^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?$/.test(name)) throw new Error(`'${spec}': '${name}' is not a DNS name`);
  if (authority !== '') {
    const server = /^\[([^\]]+)\](?::(\d+))?$/.exec(authority) ?? /^([^:]+)(?::(\d+))?$/.exec(authority);
    if (!server || isIP(server[1] ?? '') === 0) throw new Error(`'${spec}': the DNS server '${authority}' must be an IP address, optionally with a port`);
  }
  return { server: authority === '' ? undefined : authority, name, port };
}

