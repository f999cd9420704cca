import type { Config } from '../config/schema.ts';
import { LeastLoadedPicker } from './least-loaded.ts';
import type { Picker } from './picker.ts';
import { RoundRobinPicker } from './round-robin.ts';

export type PolicyName = Config['balancer']['policy'];

const FACTORIES: Readonly<Record<PolicyName, () => Picker>> = {
  'least-loaded': () => new LeastLoadedPicker(),
  'round-robin': () => new RoundRobinPicker(),
};

/** Every policy name config.balancer.policy may hold. */
export const POLICY_NAMES: readonly PolicyName[] = Object.keys(FACTORIES) as PolicyName[];

/** A fresh picker for the configured policy; throws naming the choices on an unknown one. */
export function createPicker(policy: string): Picker {
  const make = Object.hasOwn(FACTORIES, policy) ? FACTORIES[policy as PolicyName] : undefined;
  if (make === undefined) throw new Error(`unknown balancer policy '${policy}': use ${POLICY_NAMES.join(' or ')}`);
  return make();
}
