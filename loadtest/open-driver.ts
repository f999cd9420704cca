import { PreciseOpenLoop, type DriverCommand, type DriverReport } from './precise-loop.ts';

/**
 * The open-loop driver process (forked by forked-loop.ts): it owns the connections and the schedule,
 * so the timing of sends never waits behind the parent's progress output, scrapes or answer checks.
 * It reports once a second for the progress line and once at the end of each step.
 */
let loop: PreciseOpenLoop | undefined;
let ticker: NodeJS.Timeout | undefined;
let errorsReported = 0;
/** The operator's stop for the current step (it may arrive before the step's schedule starts). */
let stopped = false;

const send = (m: DriverReport): void => {
  process.send?.(m);
};

async function handle(m: DriverCommand): Promise<void> {
  switch (m.type) {
    case 'init':
      loop = new PreciseOpenLoop(m.target);
      send({ type: 'ready' });
      return;
    case 'step': {
      if (!loop) throw new Error('step before init');
      const l = loop;
      stopped = false;
      await l.connect(2000);
      errorsReported = 0;
      ticker = setInterval(() => {
        const p = l.progress();
        if (!p) return;
        send({ type: 'tick', qps: p.qps, p99Ms: p.p99Ms, newErrors: p.errorsSeen - errorsReported });
        errorsReported = p.errorsSeen;
      }, 1000);
      try {
        const running = l.run(m.step);
        // A stop that came while the connections opened ends the step as soon as it starts.
        if (stopped) l.stop();
        send({ type: 'done', result: await running });
      } finally {
        clearInterval(ticker);
      }
      return;
    }
    case 'stop':
      stopped = true;
      loop?.stop();
      return;
    case 'close':
      loop?.close();
      process.disconnect();
      return;
  }
}

process.on('message', (m: DriverCommand) => {
  handle(m).catch((e: unknown) => send({ type: 'error', message: (e as Error).stack ?? String(e) }));
});
// The parent is gone (or done with us): nothing left to report to.
process.on('disconnect', () => {
  loop?.close();
  process.exit(0);
});
