/**
 * Where a worker host listens: parsing its --listen address and telling whether only this machine can
 * reach it.
 */

export type Target = { readonly path: string } | { readonly host: string; readonly port: number };

/** Parses a listen address; throws RangeError naming what is wrong. */
export function parseListen(listen: string): Target {
  if (listen.startsWith('unix:')) {
    const path = listen.slice('unix:'.length);
    if (path === '') throw new RangeError(`listen address '${listen}' has no socket path`);
    return { path };
  }
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(listen);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new RangeError(`listen address '${listen}' is neither unix:/path nor host:port`);
  return { host: (m[1] ?? m[2])!, port };
}

/**
 * Whether a listen address can only be reached from this machine: a unix socket, or a loopback IP
 * (127.0.0.0/8, ::1). Without a token or client certificates the worker protocol trusts every peer, so
 * anything wider is an operator's explicit choice and is logged as such.
 */
export function isLocalOnly(target: Target): boolean {
  if ('path' in target) return true;
  return /^127\./.test(target.host) || target.host === '::1' || target.host === 'localhost';
}
