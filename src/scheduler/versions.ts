/** Numeric version order (versions are positive integers kept as strings, possibly beyond 2^53). */
export function compareVersions(a: string, b: string): number {
  const x = BigInt(a);
  const y = BigInt(b);
  return x < y ? -1 : x > y ? 1 : 0;
}
