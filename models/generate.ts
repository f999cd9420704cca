// Writes the sample models into a Triton-layout repository: <out>/<name>/1/model.onnx.
//   node --import tsx models/generate.ts [--if-missing] [--out DIR] [name ...]
// --if-missing returns at once when every file exists and is current (see REVISIONS): it runs before
// every test run and at install.
// The committed configs (config.pbtxt / config.json) beside the models are copied when --out names
// another folder, so a generated repository is the same as the sample one.
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const MODEL_NAMES = ['simple', 'simple_int8', 'simple_string', 'simple_identity', 'identity', 'mlp', 'cnn', 'preprocess', 'postprocess', 'tiny_lm', 'simple_sequence', 'simple_dyna_sequence', 'sequence_accumulator'];
/** Ensembles and built-in backends have no file: only their committed config and an empty version folder (Triton asks for one). */
const ENSEMBLE_NAMES = ['mlp_pipeline', 'repeat_int32'];
const CONFIG_FILES = ['config.pbtxt', 'config.json'];
/**
 * Bumped whenever a model's graph or weights change, so that --if-missing regenerates a file left by
 * an older checkout. The revisions written are recorded in <out>/.generated.json (not committed).
 * cnn 2: 32, 64 and 128 channels (was 8, 16, 32), compute-bound as the worker benchmark needs.
 * tiny_lm 2: time-major past keys and values, and only the new tokens' keys and values answered.
 */
const REVISIONS: Readonly<Record<string, number>> = { cnn: 2, tiny_lm: 2 };
const STAMP_FILE = '.generated.json';

const revisionOf = (name: string): number => REVISIONS[name] ?? 1;

function readStamps(out: string): Record<string, number> {
  try {
    const parsed: unknown = JSON.parse(readFileSync(join(out, STAMP_FILE), 'utf8'));
    return typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, number>) : {};
  } catch {
    return {};
  }
}

/** A model is current when its file exists and was written by this revision of the generator. */
function isCurrent(out: string, name: string, stamps: Record<string, number>): boolean {
  if (!existsSync(modelFile(out, name))) return false;
  // Files from before the stamps existed count as revision 1.
  return (stamps[name] ?? 1) === revisionOf(name);
}

interface Args {
  readonly ifMissing: boolean;
  readonly out: string;
  readonly names: readonly string[];
}

function usage(problem: string): never {
  process.stderr.write(`generate: ${problem}\nusage: node --import tsx models/generate.ts [--if-missing] [--out DIR] [name ...]\nmodels: ${MODEL_NAMES.join(', ')}\n`);
  process.exit(2);
}

function parseArgs(argv: readonly string[]): Args {
  let ifMissing = false;
  let out = HERE;
  const names: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '--if-missing') ifMissing = true;
    else if (arg === '--out') {
      const dir = argv[++i];
      if (dir === undefined || dir === '') usage('--out needs a folder');
      out = resolve(dir);
    } else if (arg.startsWith('--out=')) out = resolve(arg.slice('--out='.length));
    else if (arg.startsWith('-')) usage(`unknown option '${arg}'`);
    else if (MODEL_NAMES.includes(arg)) names.push(arg);
    else usage(`unknown model '${arg}'`);
  }
  return { ifMissing, out, names: names.length > 0 ? names : MODEL_NAMES };
}

function modelFile(out: string, name: string): string {
  return join(out, name, '1', 'model.onnx');
}

// Several test runs may generate at once: each writes its own temporary file and renames it into place,
// so no reader ever sees half a model.
function writeAtomically(file: string, bytes: Uint8Array): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, bytes);
    renameSync(tmp, file);
  } catch (e) {
    if (existsSync(tmp)) unlinkSync(tmp);
    throw e;
  }
}

function copyConfigs(out: string, name: string): void {
  if (resolve(out) === HERE) return;
  for (const config of CONFIG_FILES) {
    const from = join(HERE, name, config);
    const to = join(out, name, config);
    if (existsSync(from) && !existsSync(to)) copyFileSync(from, to);
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  for (const name of ENSEMBLE_NAMES) {
    mkdirSync(join(args.out, name, '1'), { recursive: true });
    copyConfigs(args.out, name);
  }
  const stamps = readStamps(args.out);
  const todo = args.ifMissing ? args.names.filter((n) => !isCurrent(args.out, n, stamps)) : args.names;
  if (todo.length === 0) return;
  // Loaded only when there is work, so the --if-missing check stays quick.
  const { buildSampleModel } = await import('./sample-models.ts');
  for (const name of todo) {
    const started = performance.now();
    const bytes = buildSampleModel(name);
    const file = modelFile(args.out, name);
    writeAtomically(file, bytes);
    copyConfigs(args.out, name);
    // Re-read before writing: another generator may have stamped other models meanwhile.
    writeAtomically(join(args.out, STAMP_FILE), Buffer.from(`${JSON.stringify({ ...readStamps(args.out), [name]: revisionOf(name) }, null, 2)}\n`));
    const ms = (performance.now() - started).toFixed(0);
    process.stdout.write(`generate: ${name} (${bytes.length} bytes, ${ms} ms)\n`);
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`generate: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  process.exit(1);
});
