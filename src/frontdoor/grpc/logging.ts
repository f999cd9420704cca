import { InvalidParameter, Unimplemented } from '../../core/errors.ts';
import type { LogControl, LogSettings } from '../../telemetry/log-settings.ts';

type SettingValue = { bool_param?: boolean; uint32_param?: number; string_param?: string; parameter_choice?: string };

/** The value a SettingValue carries, by the oneof member it sets. */
function valueOf(field: string, v: SettingValue): boolean | number | string {
  switch (v.parameter_choice) {
    case 'bool_param': return v.bool_param ?? false;
    case 'uint32_param': return v.uint32_param ?? 0;
    case 'string_param': return v.string_param ?? '';
    default: throw InvalidParameter(field, 'has no value (set bool_param, uint32_param or string_param)');
  }
}

function toWire(s: LogSettings): Record<string, SettingValue> {
  return {
    log_file: { string_param: s.log_file },
    log_info: { bool_param: s.log_info },
    log_warning: { bool_param: s.log_warning },
    log_error: { bool_param: s.log_error },
    log_verbose_level: { uint32_param: s.log_verbose_level },
    log_format: { string_param: s.log_format },
  };
}

/**
 * LogSettings: the REST /v2/logging twin. An empty map reads the settings; fields given are applied
 * together (a bad one changes nothing); the reply carries every setting.
 */
export function logSettings(control: LogControl | undefined, r: { settings: Record<string, SettingValue> }): { settings: Record<string, SettingValue> } {
  if (!control) throw Unimplemented('LogSettings on a server whose logger was not made by sluice');
  const changes: Record<string, unknown> = {};
  for (const [field, v] of Object.entries(r.settings)) changes[field] = valueOf(field, v);
  const after = Object.keys(changes).length === 0 ? control.settings() : control.update(changes);
  return { settings: toWire(after) };
}
