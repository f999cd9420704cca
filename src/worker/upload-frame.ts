/**
 * POST /upload: the files of one uploaded version (src/repository/uploads.ts), sent by a gateway to a
 * worker that answered SLUICE_UPLOAD_MISSING. Pure functions, both sides import this file.
 *
 * ```
 * u32 little-endian  header length H
 * H bytes            header, UTF-8 JSON {model, version, config, source, files: [{path, byteLength}]}
 * ...                each file's bytes, in header order
 * ```
 *
 * The receiver checks every field, then hashes what it received: a body whose files are not the ones
 * its source names (truncated, or altered on the way) is refused, so a worker never stages wrong files
 * under a right name.
 */
import { InvalidRequest } from '../core/errors.ts';
import { MODEL_NAME_PATTERN, SOURCE_PATTERN, VERSION_PATTERN } from '../core/model.ts';
import { sourceOf, uploadPathOf, type UploadBundle, type UploadedFile } from '../repository/uploads.ts';

export const UPLOAD_CONTENT_TYPE = 'application/x-sluice-upload';
const MAX_HEADER_BYTES = 1024 * 1024;
const MAX_FILES = 64;

export function encodeUpload(bundle: UploadBundle): Buffer[] {
  const header = Buffer.from(JSON.stringify({
    model: bundle.model, version: bundle.version, config: bundle.config, source: bundle.source,
    files: bundle.files.map((f) => ({ path: f.path, byteLength: f.data.byteLength })),
  }), 'utf8');
  const length = Buffer.alloc(4);
  length.writeUInt32LE(header.byteLength, 0);
  return [length, header, ...bundle.files.map((f) => Buffer.from(f.data.buffer, f.data.byteOffset, f.data.byteLength))];
}

function bad(reason: string): Error {
  return InvalidRequest(`upload body: ${reason}`);
}

/** Parses and checks an upload body; every failure is an INVALID_ARG SluiceError naming what was wrong. */
export function decodeUpload(body: Buffer): UploadBundle {
  if (body.byteLength < 4) throw bad('shorter than its header length');
  const h = body.readUInt32LE(0);
  if (h > MAX_HEADER_BYTES || 4 + h > body.byteLength) throw bad(`header length ${h} is past the body's end or over ${MAX_HEADER_BYTES} bytes`);
  let json: unknown;
  try {
    json = JSON.parse(body.subarray(4, 4 + h).toString('utf8'));
  } catch (e) {
    throw bad(`header is not JSON (${(e as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw bad('header must be a JSON object');
  const { model, version, config, source, files } = json as Record<string, unknown>;
  if (typeof model !== 'string' || !MODEL_NAME_PATTERN.test(model)) throw bad(`invalid model name ${JSON.stringify(model)}`);
  if (typeof version !== 'string' || !VERSION_PATTERN.test(version)) throw bad(`invalid version ${JSON.stringify(version)}`);
  if (typeof config !== 'string') throw bad('config must be a string');
  if (typeof source !== 'string' || !SOURCE_PATTERN.test(source)) throw bad('source must be 64 lowercase hex digits');
  if (!Array.isArray(files) || files.length === 0 || files.length > MAX_FILES) throw bad(`files must list 1 to ${MAX_FILES} files`);
  const out: UploadedFile[] = [];
  let offset = 4 + h;
  const seen = new Set<string>();
  for (const f of files as unknown[]) {
    const { path, byteLength } = (typeof f === 'object' && f !== null ? f : {}) as Record<string, unknown>;
    if (typeof path !== 'string') throw bad('every file needs a path');
    uploadPathOf(`file:${version}/${path}`);
    if (seen.has(path)) throw bad(`file '${path}' is listed twice`);
    seen.add(path);
    if (typeof byteLength !== 'number' || !Number.isSafeInteger(byteLength) || byteLength < 0 || offset + byteLength > body.byteLength) throw bad(`file '${path}': byteLength ${JSON.stringify(byteLength)} runs past the body's end`);
    out.push({ path, data: body.subarray(offset, offset + byteLength) });
    offset += byteLength;
  }
  if (offset !== body.byteLength) throw bad(`${body.byteLength - offset} bytes follow the last file`);
  if (sourceOf(model, version, config, out) !== source) throw bad(`the files are not those source ${source.slice(0, 16)} names (altered or cut on the way)`);
  return { model, version, config, source, files: out };
}
