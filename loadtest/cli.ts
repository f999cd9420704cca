import { writeFile } from 'node:fs/promises';
import { HELP, parseOptions, UsageError, type LoadtestOptions } from './options.ts';
import { streamProgress } from './progress.ts';
import { writeReport } from './report.ts';
import { runLoadtest } from './run.ts';
import { renderSearch, renderTable } from './table.ts';

/**
 * `sluice loadtest`: parses flags, runs the steps, prints the table and writes --json / --report.
 * Returns the exit status: 0 done, 1 failed (target unusable, wrong answers seen), 2 bad usage.
 * The first Ctrl-C ends the current step at once (requests in flight finish; it is measured up to
 * then) and runs no further steps; results so far are still written. A second Ctrl-C exits.
 */
export async function runLoadtestCli(argv: string[]): Promise<number> {
  if (argv.includes('--generate')) {
    const { runGenerationCli } = await import('./generation-cli.ts');
    return runGenerationCli(argv);
  }
  let o: LoadtestOptions;
  try {
    o = parseOptions(argv);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`sluice loadtest: ${e.message}\nRun 'sluice loadtest --help' for the flags.\n`);
      return 2;
    }
    throw e;
  }
  if (o.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const ac = new AbortController();
  const onSigint = (): void => {
    if (ac.signal.aborted) process.exit(130);
    process.stderr.write('\nsluice loadtest: stopping: ending this step, writing the results (Ctrl-C again to quit now)\n');
    ac.abort();
  };
  process.on('SIGINT', onSigint);
  const showProgress = o.progress ?? process.stderr.isTTY === true;
  try {
    const outcome = await runLoadtest(o, {
      ...(showProgress ? { progress: streamProgress(process.stderr, process.stderr.isTTY === true) } : {}),
      note: (text) => process.stderr.write(`sluice loadtest: ${text}\n`),
      signal: ac.signal,
    });
    const { report } = outcome;
    if (!o.quiet) {
      process.stdout.write(`${o.model} over ${o.protocol}; check: ${outcome.checkKind === 'none' ? 'off' : `${outcome.checkKind}, first response and 1 in ${o.checkEvery}`}\n`);
      process.stdout.write(`${renderTable(report.steps)}\n`);
      if (report.search) process.stdout.write(`${renderSearch(report.search)}\n`);
    }
    if (o.jsonFile) await writeFile(o.jsonFile, `${JSON.stringify(report, null, 2)}\n`);
    if (o.reportFile) await writeReport(o.reportFile, report);
    if (outcome.wrong > 0) {
      process.stderr.write(`sluice loadtest: ${outcome.wrong} wrong answer(s) among the checked responses; first: ${outcome.firstWrong ?? '?'}\n`);
      return 1;
    }
    return 0;
  } catch (e) {
    process.stderr.write(`sluice loadtest: ${(e as Error).message}\n`);
    return 1;
  } finally {
    process.off('SIGINT', onSigint);
  }
}
